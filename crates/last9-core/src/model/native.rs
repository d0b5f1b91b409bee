//! Native (sparse, exponential) histograms: Prometheus's standard schemas, recorded lock-free.
//!
//! A bucket of schema `s` has index `i` and covers `(base^(i-1), base^i]` milliseconds, with
//! `base = 2^(2^-s)` (schema 3: eight buckets per power of two, each about 9% wide). Values at
//! or below the zero threshold go to the zero bucket. Durations are never negative, so only
//! positive buckets exist.
//!
//! The buckets of one series live in small open-addressed tables of `u64` slots, each holding
//! a bucket's key (schema and index) in its top bits and its count below. Recording is a load
//! and a `fetch_add` on the bucket's slot; a bucket seen for the first time is claimed with one
//! compare-and-swap. Keys never move and slots are never freed, so readers and writers need no
//! lock, and the cells can live in a worker's mapped file like the classic ones. The home slot
//! of index `i` is `i mod slots`: the buckets a series uses are a contiguous run, so they
//! rarely collide.
//!
//! A series' own cells are small and fixed (see [`NativeSpec::cells`]): counters, the five
//! buckets of schema -4 (which hold any duration), and [`INLINE_SLOTS`] slots, enough for a
//! route whose durations span a factor of about three. A series that spreads wider gets an
//! [`Extension`]: a table of [`SMALL_EXTENSION_SLOTS`], then, only if that fills, one with room
//! for its whole bucket limit; each allocated once, on the heap or (through an
//! [`ExtensionPlace`]) in the worker's file, so memory and disk follow a series' spread.
//!
//! Bucket limit, as the spec's strategy says (reduce resolution rather than grow): a series
//! keeps at most `max_buckets` buckets. When an observation needs one more, the series steps
//! down one schema (its `steps` counter): from then on a value counts in any existing slot
//! that lies inside its bucket at the reduced schema, or claims a slot at that schema while the
//! reduced series still fits; otherwise it steps again. Readers merge every slot into the
//! series' current schema, so counts stay exact and resolution drops one step at a time; at
//! schema -4 the five fixed buckets take everything. Series of different schemas (from several
//! processes) are added at the coarser one, as Prometheus does.

use crate::Error;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

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
/// Key = (schema + 5) << INDEX_BITS | (index + bias): never zero, so a zero slot is empty.
const KEY_BITS: u32 = 4 + INDEX_BITS;
const COUNT_BITS: u32 = 64 - KEY_BITS;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The cells of a series, in order.
const ZERO: usize = 0;
/// Slots claimed in both tables (low 32 bits), and schema steps taken below the configured
/// schema to stay within the bucket limit (high bits): one word, so that a claim at the
/// configured schema checks both with one atomic add.
const CLAIMS_STEPS: usize = 1;
const ONE_STEP: u64 = 1 << 32;
const CLAIMS_MASK: u64 = ONE_STEP - 1;
/// Where the extension table is, for readers in other processes (a store's business: zero on
/// the heap, a record's offset in a worker file).
pub const EXTENSION_AT: usize = 2;
/// The buckets of schema -4, indexes -1..=3: a `u64` of nanoseconds is 2^-20..2^44 ms, inside
/// (65536^-2, 65536^3], so these five counters hold any duration, with no claim.
const COARSEST: usize = 3;
const COARSEST_INDEXES: std::ops::RangeInclusive<i32> = -1..=3;
const SLOTS: usize = COARSEST + 5;
/// Slots every series keeps in its own cells.
pub const INLINE_SLOTS: usize = 12;
/// A key lives at most this far past its home slot in the inline table, so that a lookup of a
/// bucket that is not there (it is in the extension) costs a few loads, not a scan.
const INLINE_PROBES: usize = 2;
/// Slots of a series' first extension table (a spread of about 40 times at schema 3, inline
/// slots included), and how far from home a key may live there; a wider series gets a second
/// table with room for its whole bucket limit.
pub const SMALL_EXTENSION_SLOTS: usize = 32;
const SMALL_PROBES: usize = 4;

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

    /// Cells a series keeps itself: counters, the schema -4 buckets and the inline slots.
    pub fn cells(&self) -> usize {
        SLOTS + INLINE_SLOTS
    }

    /// Slots a series may claim in all: twice its bucket limit, so that keys claimed at a
    /// reduced schema fit beside those claimed before (a reduction never moves a key).
    fn claim_limit(&self) -> u64 {
        self.max_buckets as u64 * 2
    }

    /// Slots of an extension table (a power of two, room for every claim).
    pub fn extension_len(&self) -> usize {
        (self.claim_limit() as usize).next_power_of_two()
    }

    /// The bucket index of `value_ms` (> 0) at this spec's schema.
    #[inline]
    fn index_of(&self, value_ms: f64) -> i32 {
        let (frac, exp) = frexp(value_ms);
        let index = if self.schema > 0 {
            let bounds = fraction_bounds(self.schema);
            // Up to schema 4, counting the bounds below is branch-free (vectorised), faster than
            // a binary search whose branches a spread of durations cannot predict.
            let j = if bounds.len() <= 16 {
                bounds.iter().map(|b| (*b < frac) as usize).sum()
            } else {
                bounds.partition_point(|b| *b < frac)
            };
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

/// A key's home slot before masking: neighbouring indexes of one schema are neighbours.
fn home(key: u64) -> usize {
    (key + (key >> INDEX_BITS) * 61) as usize
}

/// Where extension tables are made when a series' cells are shared with other processes.
pub trait ExtensionPlace: Send + Sync {
    /// `len + 1` zeroed cells (a link to a further table, then `len` slots), linked from `link`
    /// so that other readers find them, valid while `link` is; the same cells again if `link`
    /// has them already. None when there is no room.
    fn allocate(&self, link: &AtomicU64, len: usize) -> Option<NonNull<AtomicU64>>;
}

/// An extension table: its link cell and slots, the allocation when they are on the heap, and
/// the next table; or, with no cells yet, where tables will be made.
struct Table {
    cells: NonNull<AtomicU64>,
    len: usize,
    _heap: Option<Box<[AtomicU64]>>,
    place: Option<&'static dyn ExtensionPlace>,
    next: Extension,
}

// SAFETY: the cells are atomics; the rest is read-only once shared.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

/// The extension tables of series whose cells live in `place` (a `static`, made once).
pub struct Pending(Table);

impl Pending {
    pub const fn new(place: &'static dyn ExtensionPlace) -> Pending {
        Pending(Table {
            cells: NonNull::dangling(),
            len: 0,
            _heap: None,
            place: Some(place),
            next: Extension {
                table: AtomicPtr::new(std::ptr::null_mut()),
            },
        })
    }
}

/// Where an extension points once its place had no room: never asked again (a full disk must
/// not cost every observation a lock and a failed append); the series keeps reducing
/// resolution instead, exactly.
static NO_ROOM: Pending = Pending(Table {
    cells: NonNull::dangling(),
    len: 0,
    _heap: None,
    place: None,
    next: Extension {
        table: AtomicPtr::new(std::ptr::null_mut()),
    },
});

/// A table as its users see it.
#[derive(Clone, Copy)]
struct TableRef<'a> {
    link: &'a AtomicU64,
    slots: &'a [AtomicU64],
    next: &'a Extension,
}

/// A further table of a series, allocated when the slots before it are full (one
/// compare-and-swap decides whose allocation stays), freed with the series. On the heap unless
/// made with [`Extension::in_place`]. One pointer: a table, null, or a [`Pending`] place.
#[derive(Default)]
pub struct Extension {
    table: AtomicPtr<Table>,
}

impl Extension {
    /// Extensions that `pending`'s place allocates.
    pub fn in_place(pending: &'static Pending) -> Extension {
        Extension {
            table: AtomicPtr::new(&pending.0 as *const Table as *mut Table),
        }
    }

    /// The table, allocated with `len` slots (linked from `link`) if there is none yet; None if
    /// there is no room.
    fn get_or_alloc(&self, link: &AtomicU64, len: usize) -> Option<TableRef<'_>> {
        if let Some(table) = self.get() {
            return Some(table);
        }
        let now = self.table.load(Ordering::Acquire);
        let no_room = &NO_ROOM.0 as *const Table as *mut Table;
        if now == no_room {
            return None;
        }
        // SAFETY: null or a `Pending`'s table, which lives for ever.
        let place = unsafe { now.as_ref() }.and_then(|pending| pending.place);
        let (cells, heap) = match place {
            None => {
                let heap: Box<[AtomicU64]> = (0..len + 1).map(|_| AtomicU64::new(0)).collect();
                (NonNull::from(&heap[0]), Some(heap))
            }
            Some(place) => match place.allocate(link, len) {
                Some(cells) => (cells, None),
                None => {
                    let _ = self
                        .table
                        .compare_exchange(now, no_room, Ordering::AcqRel, Ordering::Acquire);
                    return self.get();
                }
            },
        };
        let table = Table {
            cells,
            len,
            _heap: heap,
            place: None,
            // A placed series' next table goes to the same place.
            next: Extension {
                table: AtomicPtr::new(if place.is_some() {
                    now
                } else {
                    std::ptr::null_mut()
                }),
            },
        };
        let fresh = Box::into_raw(Box::new(table));
        if self
            .table
            .compare_exchange(now, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `fresh` was never shared: another thread's table won.
            drop(unsafe { Box::from_raw(fresh) });
        }
        self.get()
    }

    /// The slots of this table and of the next one, as far as there are any.
    pub fn slots(&self) -> [Option<&[AtomicU64]>; 2] {
        let first = self.get();
        [
            first.map(|t| t.slots),
            first.and_then(|t| t.next.get()).map(|t| t.slots),
        ]
    }

    fn get(&self) -> Option<TableRef<'_>> {
        let table = self.table.load(Ordering::Acquire);
        // SAFETY: null, a `Pending`'s table (no cells) or a table installed by `get_or_alloc`,
        // freed only by drop; its cells are its heap box or a place's, valid while it lives.
        let table = unsafe { table.as_ref() }?;
        (table.len != 0).then(|| {
            // SAFETY: `len + 1` cells, see `ExtensionPlace::allocate`.
            let cells = unsafe { std::slice::from_raw_parts(table.cells.as_ptr(), table.len + 1) };
            TableRef {
                link: &cells[0],
                slots: &cells[1..],
                next: &table.next,
            }
        })
    }
}

impl Drop for Extension {
    fn drop(&mut self) {
        let table = *self.table.get_mut();
        // SAFETY: a table with cells was installed by `get_or_alloc` from `Box::into_raw`, and
        // no reader is left; a `Pending`'s (no cells) is static.
        if unsafe { table.as_ref() }.is_some_and(|t| t.len != 0) {
            drop(unsafe { Box::from_raw(table) });
        }
    }
}

/// The extension tables of a series, as far as its reader knows them.
#[derive(Clone, Copy)]
pub enum Overflow<'a> {
    /// The slots of the tables found (a series read from a file).
    Found([Option<&'a [AtomicU64]>; 2]),
    /// Made on first need (a recording series).
    Grows(&'a Extension),
}

/// The native buckets of one series, over `cells` (see [`NativeSpec::cells`]).
pub struct NativeCells<'a> {
    spec: &'a NativeSpec,
    cells: &'a [AtomicU64],
    overflow: Overflow<'a>,
}

/// What a probe of one table found.
#[derive(PartialEq)]
enum Probe {
    Counted,
    /// The bucket has no slot, and claiming one was not allowed.
    Refused,
    /// The bucket has no slot within reach, and every slot within reach is taken.
    Full,
}

/// Whether a probe may claim a slot for a bucket it does not find.
#[derive(Clone, Copy, PartialEq)]
enum Claim {
    No,
    /// At the configured schema, while the series has taken no step and has room.
    Fine,
    /// At a reduced schema, while the series has room for it.
    Reduced,
}

impl<'a> NativeCells<'a> {
    /// `cells` must be `spec.cells()` long.
    pub fn new(spec: &'a NativeSpec, cells: &'a [AtomicU64], overflow: Overflow<'a>) -> NativeCells<'a> {
        debug_assert_eq!(cells.len(), spec.cells());
        NativeCells {
            spec,
            cells,
            overflow,
        }
    }

    fn inline(&self) -> &[AtomicU64] {
        &self.cells[SLOTS..SLOTS + INLINE_SLOTS]
    }

    /// Every slot: inline, then in the extension tables there are now.
    fn all_slots(&self) -> impl Iterator<Item = &AtomicU64> {
        let [small, large] = match self.overflow {
            Overflow::Found(tables) => tables,
            Overflow::Grows(extension) => extension.slots(),
        };
        self.inline()
            .iter()
            .chain(small.unwrap_or(&[]))
            .chain(large.unwrap_or(&[]))
    }

    /// Records one duration.
    #[inline]
    pub fn observe(&self, duration_ns: u64) {
        // A multiplication, not a division (several times slower): it rounds whole powers of
        // two of milliseconds, the only bucket bounds a duration can hit exactly, to themselves.
        let value_ms = duration_ns as f64 * 1e-6;
        if value_ms <= self.spec.zero_threshold_ms {
            self.cells[ZERO].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let index = self.spec.index_of(value_ms);
        if !self.add_count(key(self.spec.schema, index), 1, Claim::Fine) {
            self.count_reduced(self.spec.schema, index, 1);
        }
    }

    /// Adds the buckets of another histogram (a series moving to new cells, an archive).
    pub fn add(&self, other: &NativeBuckets) {
        self.cells[ZERO].fetch_add(other.zero_count, Ordering::Relaxed);
        let schema = other.schema.clamp(MIN_SCHEMA, self.spec.schema);
        let steps = (self.spec.schema - schema) as u64;
        let word = &self.cells[CLAIMS_STEPS];
        let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            (w / ONE_STEP < steps).then_some((steps * ONE_STEP) | (w & CLAIMS_MASK))
        });
        for &(index, count) in &other.buckets {
            self.count_reduced(schema, index, count);
        }
    }

    fn steps(&self) -> u8 {
        let most = (self.spec.schema - MIN_SCHEMA) as u64;
        (self.cells[CLAIMS_STEPS].load(Ordering::Relaxed) / ONE_STEP).min(most) as u8
    }

    /// Counts bucket (schema, index) at the series' reduced schema: in any slot inside that
    /// bucket, else in a new slot while the reduced series fits, else one step further down.
    #[cold]
    fn count_reduced(&self, schema: i8, index: i32, count: u64) {
        loop {
            let steps = self.steps();
            let reduced = self.spec.schema - steps as i8;
            let by = schema.saturating_sub(reduced).max(0) as u32;
            if reduced == MIN_SCHEMA {
                let coarse = coarser(index, by).clamp(*COARSEST_INDEXES.start(), *COARSEST_INDEXES.end());
                self.cells[COARSEST + (coarse + 1) as usize].fetch_add(count, Ordering::Relaxed);
                return;
            }
            let bucket = coarser(index, by);
            let mut buckets: Vec<i32> = Vec::new();
            for slot in self.all_slots() {
                let word = slot.load(Ordering::Relaxed);
                let (slot_schema, slot_index) = unkey(word >> COUNT_BITS);
                if word == 0 || slot_schema < reduced {
                    continue;
                }
                let at_reduced = coarser(slot_index, (slot_schema - reduced) as u32);
                if at_reduced == bucket {
                    slot.fetch_add(count, Ordering::Relaxed);
                    return;
                }
                buckets.push(at_reduced);
            }
            buckets.sort_unstable();
            buckets.dedup();
            if buckets.len() < self.spec.max_buckets as usize
                && self.add_count(key(reduced, bucket), count, Claim::Reduced)
            {
                return;
            }
            let _ = self.cells[CLAIMS_STEPS].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                (w / ONE_STEP == steps as u64).then_some(w + ONE_STEP)
            });
        }
    }

    /// Adds `count` to the slot of `key`, claiming one as `claim` allows. False when the
    /// bucket has no slot and none could be had.
    #[inline]
    fn add_count(&self, key: u64, count: u64, claim: Claim) -> bool {
        match self.probe(self.inline(), key, INLINE_PROBES, count, claim) {
            Probe::Counted => true,
            Probe::Refused => false,
            Probe::Full => self.add_beyond_inline(key, count, claim),
        }
    }

    /// [`Self::add_count`] past the inline slots: a small table, then one for the whole limit,
    /// each made when first needed.
    fn add_beyond_inline(&self, key: u64, count: u64, claim: Claim) -> bool {
        let Overflow::Grows(extension) = self.overflow else {
            return false; // read-only
        };
        let grow = claim != Claim::No;
        let small = if grow {
            extension.get_or_alloc(&self.cells[EXTENSION_AT], SMALL_EXTENSION_SLOTS)
        } else {
            extension.get()
        };
        let Some(small) = small else { return false };
        match self.probe(small.slots, key, SMALL_PROBES, count, claim) {
            Probe::Counted => true,
            Probe::Refused => false,
            Probe::Full => {
                let large = if grow {
                    small.next.get_or_alloc(small.link, self.spec.extension_len())
                } else {
                    small.next.get()
                };
                large.is_some_and(|t| self.probe(t.slots, key, t.slots.len(), count, claim) == Probe::Counted)
            }
        }
    }

    /// Adds `count` to the slot of `key` in one table, looking `reach` slots from its home.
    #[inline]
    fn probe(&self, table: &[AtomicU64], key: u64, reach: usize, count: u64, claim: Claim) -> Probe {
        let len = table.len();
        let home = home(key);
        for probe in 0..reach.min(len) {
            let at = home.wrapping_add(probe);
            // The inline table's length is a constant (the division is a multiplication); an
            // extension's is a power of two.
            let slot = &table[if len.is_power_of_two() {
                at & (len - 1)
            } else {
                at % len
            }];
            let mut word = slot.load(Ordering::Relaxed);
            if word == 0 {
                if !self.reserve_claim(claim) {
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
                        self.cells[CLAIMS_STEPS].fetch_sub(1, Ordering::Relaxed);
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

    /// Counts a claim if `claim` allows one now.
    fn reserve_claim(&self, claim: Claim) -> bool {
        let limit = match claim {
            Claim::No => return false,
            Claim::Fine => self.spec.max_buckets as u64,
            Claim::Reduced => self.spec.claim_limit(),
        };
        let word = self.cells[CLAIMS_STEPS].fetch_add(1, Ordering::Relaxed);
        // A claim at the configured schema also needs the series not to have stepped down.
        let steps_ok = claim == Claim::Reduced || word < ONE_STEP;
        if steps_ok && word & CLAIMS_MASK < limit {
            return true;
        }
        self.cells[CLAIMS_STEPS].fetch_sub(1, Ordering::Relaxed);
        false
    }

    /// The buckets as they are now, at the series' schema and within the spec's limit.
    pub fn read(&self) -> NativeBuckets {
        let mut buckets = NativeBuckets {
            schema: self.spec.schema - self.steps() as i8,
            zero_threshold_ms: self.spec.zero_threshold_ms,
            zero_count: self.cells[ZERO].load(Ordering::Relaxed),
            buckets: Vec::new(),
        };
        let mut entries: Vec<(i8, i32, u64)> = Vec::new();
        for slot in self.all_slots() {
            let word = slot.load(Ordering::Relaxed);
            let (schema, index) = unkey(word >> COUNT_BITS);
            // A key of a schema this spec never records comes from a damaged file: skip it.
            if word != 0 && (MIN_SCHEMA..=self.spec.schema).contains(&schema) {
                buckets.schema = buckets.schema.min(schema);
                entries.push((schema, index, word & COUNT_MASK));
            }
        }
        for (index, cell) in COARSEST_INDEXES.zip(&self.cells[COARSEST..SLOTS]) {
            let count = cell.load(Ordering::Relaxed);
            if count != 0 {
                buckets.schema = MIN_SCHEMA;
                entries.push((MIN_SCHEMA, index, count));
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

    /// A recording series on the heap: its cells and its extension.
    struct Series {
        spec: NativeSpec,
        cells: Vec<AtomicU64>,
        extension: Extension,
    }

    impl Series {
        fn new(spec: NativeSpec) -> Series {
            Series {
                cells: table(&spec),
                spec,
                extension: Extension::default(),
            }
        }

        fn cells(&self) -> NativeCells<'_> {
            NativeCells::new(&self.spec, &self.cells, Overflow::Grows(&self.extension))
        }
    }

    /// What a series of unlimited size would hold, reduced by the spec's strategy.
    fn ideal(spec: &NativeSpec, values_ms: &[f64]) -> NativeBuckets {
        let mut buckets = NativeBuckets {
            schema: spec.schema,
            zero_threshold_ms: spec.zero_threshold_ms,
            zero_count: 0,
            buckets: values_ms.iter().map(|v| (spec.index_of(*v), 1)).collect(),
        };
        buckets.normalize();
        buckets.limit(spec.max_buckets);
        buckets
    }

    #[test]
    fn observations_are_counted_per_bucket() {
        let spec = NativeSpec::new(3, 0.0, 160).unwrap();
        let series = Series::new(spec);
        let native = series.cells();
        native.observe(0);
        native.observe(ms(2.0));
        native.observe(ms(2.0));
        native.observe(ms(50.0));
        let read = native.read();
        assert_eq!(read.schema, 3);
        assert_eq!(read.zero_count, 1);
        assert_eq!(read.buckets, vec![(8, 2), (spec.index_of(50.0), 1)]);
        assert_eq!(read.count(), 4);
        assert!(series.extension.get().is_none(), "two buckets fit inline");
    }

    #[test]
    fn threads_lose_no_observation() {
        let spec = NativeSpec::new(3, 0.0, 40).unwrap();
        let series = Arc::new(Series::new(spec));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let series = series.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        series.cells().observe((i * 7919 + t) % 5_000_000_000);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let read = series.cells().read();
        assert_eq!(read.count(), 80_000);
        assert!(read.buckets.len() <= 40);
    }

    #[test]
    fn a_series_just_past_the_limit_drops_one_schema_step() {
        // Nine neighbouring buckets at schema 3 with a limit of eight: schema 2, exactly.
        let spec = NativeSpec::new(3, 0.0, 8).unwrap();
        let series = Series::new(spec);
        // The middle of buckets 1..=9, three times each.
        let values: Vec<f64> = (0..9)
            .flat_map(|k| [2f64.powf((k as f64 + 0.5) / 8.0); 3])
            .collect();
        for value in &values {
            series.cells().observe(ms(*value));
        }
        let read = series.cells().read();
        assert_eq!(read.schema, 2);
        assert_eq!(read, ideal(&spec, &values));
        assert_eq!(read.count(), 27);
        // Later observations at the reduced schema still count exactly, in slots already there.
        series.cells().observe(ms(values[0]));
        assert_eq!(series.cells().read().count(), 28);
        assert_eq!(series.cells().read().schema, 2);
    }

    #[test]
    fn wide_series_reduce_step_by_step_and_keep_every_count() {
        for max_buckets in [1, 4, 20, 160] {
            let spec = NativeSpec::new(3, 0.0, max_buckets).unwrap();
            let series = Series::new(spec);
            // 1 µs to 100 s, log-uniform: about 220 buckets at schema 3.
            let values: Vec<f64> = (0..5000)
                .map(|i| 0.001 * 1e8f64.powf(((i * 7919) % 5000) as f64 / 4999.0))
                .collect();
            for value in &values {
                series.cells().observe(ms(*value));
            }
            let read = series.cells().read();
            let ideal = ideal(&spec, &values);
            assert_eq!(read.count(), 5000, "limit {max_buckets}");
            // (At schema -4 these values still take three buckets, whatever the limit.)
            let most = (max_buckets as usize).max(ideal.buckets.len());
            assert!(read.buckets.len() <= most, "limit {max_buckets}");
            // Never coarser than one step past what the limit needs, and exact at its schema.
            assert!(
                read.schema <= ideal.schema && read.schema >= ideal.schema - 1,
                "limit {max_buckets}: {} vs {}",
                read.schema,
                ideal.schema
            );
            let mut expected = ideal.clone();
            expected.reduce_to(read.schema);
            assert_eq!(read, expected, "limit {max_buckets}");
        }
    }

    #[test]
    fn a_heap_series_grows_past_its_inline_slots_once_and_exactly() {
        let spec = NativeSpec::new(3, 0.0, 160).unwrap();
        let series = Arc::new(Series::new(spec));
        // 0.5 ms to 2 s: about 96 buckets, far more than the inline slots.
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let series = series.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        let ms = 0.5 * 4000f64.powf(((i * 7 + t) % 1000) as f64 / 999.0);
                        series.cells().observe((ms * 1e6) as u64);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let read = series.cells().read();
        assert_eq!(read.count(), 40_000);
        assert_eq!(read.schema, 3, "no resolution lost: the limit is 160");
        assert!(read.buckets.len() > INLINE_SLOTS, "{}", read.buckets.len());
        let lens = series.extension.slots().map(|t| t.map(<[_]>::len));
        assert_eq!(lens, [Some(SMALL_EXTENSION_SLOTS), Some(512)]);
        // The same buckets added to a new series (a series moving) read the same.
        let moved = Series::new(spec);
        moved.cells().add(&read);
        assert_eq!(moved.cells().read(), read);
    }

    #[test]
    fn without_room_for_an_extension_counts_stay_exact_at_a_coarser_schema() {
        static ASKED: AtomicU64 = AtomicU64::new(0);
        struct NoRoom;
        impl ExtensionPlace for NoRoom {
            fn allocate(&self, _: &AtomicU64, _: usize) -> Option<NonNull<AtomicU64>> {
                ASKED.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
        static NOWHERE: Pending = Pending::new(&NoRoom);
        let spec = NativeSpec::default_spec();
        let cells = table(&spec);
        let extension = Extension::in_place(&NOWHERE);
        let native = NativeCells::new(&spec, &cells, Overflow::Grows(&extension));
        let values: Vec<f64> = (0..1000).map(|i| 0.5 * 4000f64.powf(i as f64 / 999.0)).collect();
        for value in &values {
            native.observe(ms(*value));
        }
        let read = native.read();
        assert_eq!(read.count(), 1000);
        assert!(read.schema < 3);
        assert_eq!(
            ASKED.load(Ordering::Relaxed),
            1,
            "a place without room is asked once"
        );
        let mut expected = ideal(&spec, &values);
        expected.reduce_to(read.schema);
        assert_eq!(read, expected);
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
