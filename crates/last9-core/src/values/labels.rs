//! Bounded interning of label values that come from requests.
//!
//! A client controls the path and the Host header, so every value taken from a request goes
//! through a [`BoundedInterner`]: at most `limit` distinct values get their own id, every other
//! value is counted under one overflow value. Memory and series count stay bounded whatever a
//! client sends.
//!
//! Fairness: values from requests ([`BoundedInterner::intern_observed`]) take the first tenth
//! of the slots first come, first served (so an app with a few domains sees each of them from
//! its first request); every other slot goes only to a value on its [`ADMIT_AFTER`]th
//! sighting, counted in a small table of recent candidates that forgets values seen once.
//! Values a client sends once (random Host headers, scanned paths) therefore never take more
//! than that first tenth; past it they, and the first sightings of each new value, are counted
//! under the overflow value, so totals stay exact. Values from the app's code or configuration
//! (route templates, an allow-list) are admitted at once ([`BoundedInterner::intern`]).

use std::mem::size_of;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ahash::{AHashMap, RandomState};
use parking_lot::{Mutex, RwLock};

/// Id of an interned value. Id 0 is always the overflow value.
pub type ValueId = u32;

/// The id every value past the limit maps to.
pub const OVERFLOW: ValueId = 0;

/// Longest label value kept; longer values are cut at a character boundary.
pub const MAX_VALUE_LEN: usize = 256;

/// Sightings a value from a request needs before it gets its own id, once the first-come
/// slots are taken: the first `ADMIT_AFTER - 1` requests of such a value are counted under the
/// overflow value.
pub const ADMIT_AFTER: u8 = 3;

/// The share of an interner's slots given first come, first served: one in this many.
const FIRST_COME_SHARE: usize = 10;

/// Candidates (values seen, not yet admitted) remembered at once; past it, every count is
/// halved and the values at zero are forgotten.
const MAX_CANDIDATES: usize = 1024;

/// Counts sightings of values not yet admitted, by a keyed 64-bit hash (no text is kept, so
/// the table's size does not depend on what clients send; the key is random per process, so a
/// client cannot aim for collisions).
#[derive(Debug, Default)]
struct Candidates {
    hasher: RandomState,
    counts: Mutex<AHashMap<u64, u8>>,
}

impl Candidates {
    /// Counts one sighting of `value`; true when this one admits it.
    fn sighted(&self, value: &str) -> bool {
        let key = self.hasher.hash_one(value);
        // Never wait: under contention the sighting is skipped, which only delays admission.
        let Some(mut counts) = self.counts.try_lock() else {
            return false;
        };
        if counts.len() >= MAX_CANDIDATES && !counts.contains_key(&key) {
            // Decay: values seen once go, values seen more often stay with half their count.
            counts.retain(|_, n| {
                *n /= 2;
                *n > 0
            });
        }
        let n = counts.entry(key).or_insert(0);
        *n += 1;
        if *n < ADMIT_AFTER {
            return false;
        }
        counts.remove(&key);
        true
    }
}

#[derive(Debug)]
pub struct BoundedInterner {
    ids: RwLock<AHashMap<Arc<str>, ValueId>>,
    values: RwLock<Vec<Arc<str>>>,
    limit: usize,
    /// Values from requests are admitted at once while fewer than this many are interned.
    first_come: usize,
    /// No value is admitted any more (an allow-list is in place).
    closed: AtomicBool,
    candidates: Candidates,
}

impl BoundedInterner {
    /// `overflow_value` is what values past `limit` are counted as; it does not use up the limit.
    pub fn new(overflow_value: &str, limit: usize) -> BoundedInterner {
        let overflow: Arc<str> = Arc::from(overflow_value);
        let mut ids = AHashMap::new();
        ids.insert(overflow.clone(), OVERFLOW);
        BoundedInterner {
            ids: RwLock::new(ids),
            values: RwLock::new(vec![overflow]),
            limit,
            first_come: (limit / FIRST_COME_SHARE).max(1),
            closed: AtomicBool::new(false),
            candidates: Candidates::default(),
        }
    }

    /// The id of a value from the app's code or configuration (a route template), interned at
    /// once while fewer than `limit` values are known.
    #[inline]
    pub fn intern(&self, value: &str) -> ValueId {
        let value = truncate(value, MAX_VALUE_LEN);
        match self.get(value) {
            Some(id) => id,
            None => self.insert(value),
        }
    }

    /// The id of a value taken from a request (a Host, a raw path, a caller's name): a known
    /// value costs one lookup; a new one is admitted at once into a first-come slot while there
    /// is one, else on its [`ADMIT_AFTER`]th sighting, and is the overflow value until then.
    #[inline]
    pub fn intern_observed(&self, value: &str) -> ValueId {
        let value = truncate(value, MAX_VALUE_LEN);
        match self.get(value) {
            Some(id) => id,
            None => self.admit(value),
        }
    }

    /// The id of `value` if it is interned (`value` already cut to [`MAX_VALUE_LEN`]).
    #[inline]
    fn get(&self, value: &str) -> Option<ValueId> {
        self.ids.read().get(value).copied()
    }

    #[cold]
    fn admit(&self, value: &str) -> ValueId {
        if self.is_full() || (self.len() >= self.first_come && !self.candidates.sighted(value)) {
            return OVERFLOW;
        }
        self.insert(value)
    }

    #[cold]
    fn insert(&self, value: &str) -> ValueId {
        let mut ids = self.ids.write();
        if let Some(&id) = ids.get(value) {
            return id;
        }
        let mut values = self.values.write();
        if self.closed.load(Ordering::Relaxed) || values.len() > self.limit {
            return OVERFLOW;
        }
        let id = values.len() as ValueId;
        let value: Arc<str> = Arc::from(value);
        values.push(value.clone());
        ids.insert(value, id);
        id
    }

    /// Whether no value can be admitted any more: an id of [`OVERFLOW`] is then final.
    pub fn is_full(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.len() >= self.limit
    }

    /// Interns `allowed` (at most `limit` of them) and admits nothing else from then on: an
    /// allow-list. Values interned before stay.
    pub fn allow_only<'a>(&self, allowed: impl IntoIterator<Item = &'a str>) {
        for value in allowed {
            self.intern(value);
        }
        self.closed.store(true, Ordering::Relaxed);
    }

    /// The text of an id handed out by [`intern`](Self::intern).
    pub fn value(&self, id: ValueId) -> Arc<str> {
        self.values.read()[id as usize].clone()
    }

    /// Distinct values interned, not counting the overflow value.
    pub fn len(&self) -> usize {
        self.values.read().len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A map from raw request text (a path, a Host header, a framework template) to what it
/// resolves to, so repeated requests skip normalisation. Bounded by entries and by bytes: keys
/// longer than `max_key_len` are never remembered, and once `capacity` keys or `byte_budget`
/// bytes are used, new keys are resolved every time instead.
#[derive(Debug)]
pub struct ResolveCache<V> {
    map: RwLock<CacheMap<V>>,
    capacity: usize,
    byte_budget: usize,
    max_key_len: usize,
}

#[derive(Debug)]
struct CacheMap<V> {
    entries: AHashMap<Box<str>, V>,
    /// Key bytes plus a fixed cost per entry.
    bytes: usize,
}

impl<V: Copy> ResolveCache<V> {
    /// Memory an entry costs besides its key's bytes (the table's slot and the key's box).
    const ENTRY_COST: usize = 2 * size_of::<(Box<str>, V)>();

    pub fn new(capacity: usize, byte_budget: usize, max_key_len: usize) -> ResolveCache<V> {
        ResolveCache {
            map: RwLock::new(CacheMap {
                entries: AHashMap::new(),
                bytes: 0,
            }),
            capacity,
            byte_budget,
            max_key_len,
        }
    }

    /// What `key` resolved to, if remembered.
    #[inline]
    pub fn get(&self, key: &str) -> Option<V> {
        self.map.read().entries.get(key).copied()
    }

    /// Remembers what `key` resolves to, if the key is short enough and the cache has room.
    pub fn remember(&self, key: &str, value: V) {
        if key.len() > self.max_key_len {
            return;
        }
        let cost = key.len() + Self::ENTRY_COST;
        let has_room =
            |map: &CacheMap<V>| map.entries.len() < self.capacity && map.bytes + cost <= self.byte_budget;
        // A full cache (a flood of new keys) is seen under the read lock, so it never holds up
        // the requests reading it.
        if !has_room(&self.map.read()) {
            return;
        }
        let mut map = self.map.write();
        if has_room(&map) && map.entries.insert(key.into(), value).is_none() {
            map.bytes += cost;
        }
    }

    /// Bytes the remembered entries use (keys plus a fixed cost each).
    pub fn bytes(&self) -> usize {
        self.map.read().bytes
    }

    pub fn len(&self) -> usize {
        self.map.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
/// Cuts `value` to at most `max` bytes at a character boundary.
pub fn truncate(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_gets_same_id() {
        let interner = BoundedInterner::new("_other", 10);
        let a = interner.intern("/a");
        assert_eq!(interner.intern("/a"), a);
        assert_ne!(interner.intern("/b"), a);
        assert_eq!(&*interner.value(a), "/a");
    }

    #[test]
    fn values_past_the_limit_share_the_overflow_id() {
        let interner = BoundedInterner::new("_other", 3);
        let ids: Vec<_> = (0..10).map(|i| interner.intern(&format!("/{i}"))).collect();
        assert_eq!(&ids[..3], &[1, 2, 3]);
        assert!(ids[3..].iter().all(|id| *id == OVERFLOW));
        assert_eq!(interner.len(), 3);
        assert_eq!(&*interner.value(OVERFLOW), "_other");
        // Known values keep their id after the limit is reached.
        assert_eq!(interner.intern("/1"), 2);
    }

    #[test]
    fn the_overflow_value_itself_maps_to_overflow() {
        let interner = BoundedInterner::new("_other", 3);
        assert_eq!(interner.intern("_other"), OVERFLOW);
        assert_eq!(interner.len(), 0);
    }

    #[test]
    fn the_resolve_cache_stops_growing_at_its_capacity() {
        let cache = ResolveCache::new(2, usize::MAX, 100);
        for (i, key) in ["a", "b", "c", "a"].into_iter().enumerate() {
            cache.remember(key, i);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a"), Some(0));
        assert_eq!(cache.get("c"), None);
    }

    #[test]
    fn the_resolve_cache_stops_growing_at_its_byte_budget() {
        let entry = ResolveCache::<u32>::ENTRY_COST;
        let cache = ResolveCache::new(1000, 3 * (10 + entry), 100);
        for i in 0..100 {
            cache.remember(&format!("{i:010}"), i);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.bytes() <= 3 * (10 + entry));
    }

    #[test]
    fn the_resolve_cache_never_keeps_long_keys() {
        let cache = ResolveCache::new(1000, usize::MAX, 255);
        cache.remember(&"h".repeat(256), 1);
        cache.remember(&"h".repeat(255), 2);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&"h".repeat(256)), None);
    }

    /// An interner of 100 slots whose 10 first-come slots were taken by one-off values.
    fn flooded() -> BoundedInterner {
        let interner = BoundedInterner::new("_other", 100);
        for i in 0..10 {
            assert_ne!(interner.intern_observed(&format!("early-{i}.example")), OVERFLOW);
        }
        interner
    }

    #[test]
    fn the_first_tenth_of_the_slots_goes_first_come() {
        let interner = BoundedInterner::new("_other", 100);
        let ids: Vec<_> = (0..12)
            .map(|i| interner.intern_observed(&format!("h{i}")))
            .collect();
        assert_eq!(&ids[..10], &(1..=10).collect::<Vec<_>>()[..]);
        assert_eq!(&ids[10..], &[OVERFLOW, OVERFLOW]);
        // A limit under ten still has one first-come slot.
        let small = BoundedInterner::new("_other", 3);
        assert_eq!(small.intern_observed("a"), 1);
        assert_eq!(small.intern_observed("b"), OVERFLOW);
    }

    #[test]
    fn past_the_first_come_slots_a_value_is_admitted_on_its_third_sighting() {
        let interner = flooded();
        let ids: Vec<_> = (0..4).map(|_| interner.intern_observed("shop.example")).collect();
        assert_eq!(ids, [OVERFLOW, OVERFLOW, 11, 11]);
    }

    #[test]
    fn values_sent_once_never_take_another_slot() {
        let interner = flooded();
        for i in 0..100_000 {
            assert_eq!(interner.intern_observed(&format!("junk-{i}.example")), OVERFLOW);
        }
        assert_eq!(interner.len(), 10);
        // A value many requests share still gets its slot afterwards.
        let ids: Vec<_> = (0..3).map(|_| interner.intern_observed("shop.example")).collect();
        assert_eq!(ids, [OVERFLOW, OVERFLOW, 11]);
    }

    #[test]
    fn a_shared_value_is_admitted_amid_a_flood_of_one_off_values() {
        let interner = flooded();
        let mut real = Vec::new();
        for i in 0..20_000 {
            interner.intern_observed(&format!("junk-{i}.example"));
            if i % 300 == 0 {
                real.push(interner.intern_observed("shop.example"));
            }
        }
        assert_eq!(interner.len(), 11);
        assert_eq!(&real[..3], &[OVERFLOW, OVERFLOW, 11]);
        assert!(real[2..].iter().all(|id| *id == 11));
    }

    #[test]
    fn values_sent_twice_never_take_a_slot() {
        let interner = flooded();
        for i in 0..10_000 {
            let junk = format!("junk-{i}.example");
            interner.intern_observed(&junk);
            interner.intern_observed(&junk);
        }
        assert_eq!(interner.len(), 10);
    }

    #[test]
    fn the_candidate_table_stays_bounded() {
        let interner = flooded();
        for i in 0..10_000 {
            interner.intern_observed(&format!("junk-{i}.example"));
        }
        assert!(interner.candidates.counts.lock().len() <= MAX_CANDIDATES);
    }

    #[test]
    fn values_from_the_app_are_admitted_at_once() {
        let interner = BoundedInterner::new("_other", 10);
        let id = interner.intern("/user/{id}");
        assert_ne!(id, OVERFLOW);
        assert_eq!(interner.intern_observed("/user/{id}"), id);
    }

    #[test]
    fn an_allow_list_admits_nothing_else() {
        let interner = BoundedInterner::new("_other", 10);
        interner.allow_only(["example.com", "api.example.com"]);
        assert_eq!(interner.len(), 2);
        for _ in 0..10 {
            assert_eq!(interner.intern_observed("other.example"), OVERFLOW);
            assert_eq!(interner.intern("other.example"), OVERFLOW);
        }
        assert_eq!(
            &*interner.value(interner.intern_observed("api.example.com")),
            "api.example.com"
        );
    }

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        let interner = BoundedInterner::new("_other", 3);
        let long = "é".repeat(1000);
        let id = interner.intern(&long);
        let kept = interner.value(id);
        assert!(kept.len() <= MAX_VALUE_LEN);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(interner.intern(&long), id);
    }
}
