//! Bounded interning of label values that come from requests.
//!
//! A client controls the path and the Host header, so every value taken from a request goes
//! through a [`BoundedInterner`]: the first `limit` distinct values get their own id, every value
//! after that is counted under one overflow value. Memory and series count stay bounded whatever
//! a client sends.

use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::RwLock;

/// Id of an interned value. Id 0 is always the overflow value.
pub type ValueId = u32;

/// The id every value past the limit maps to.
pub const OVERFLOW: ValueId = 0;

/// Longest label value kept; longer values are cut at a character boundary.
pub const MAX_VALUE_LEN: usize = 256;

#[derive(Debug)]
pub struct BoundedInterner {
    ids: RwLock<AHashMap<Arc<str>, ValueId>>,
    values: RwLock<Vec<Arc<str>>>,
    limit: usize,
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
        }
    }

    /// The id of `value`, interning it while fewer than `limit` values are known.
    #[inline]
    pub fn intern(&self, value: &str) -> ValueId {
        let value = truncate(value, MAX_VALUE_LEN);
        if let Some(&id) = self.ids.read().get(value) {
            return id;
        }
        self.intern_slow(value)
    }

    #[cold]
    fn intern_slow(&self, value: &str) -> ValueId {
        let mut ids = self.ids.write();
        if let Some(&id) = ids.get(value) {
            return id;
        }
        let mut values = self.values.write();
        // `values` holds the overflow value too, which does not count.
        if values.len() > self.limit {
            return OVERFLOW;
        }
        let id = values.len() as ValueId;
        let value: Arc<str> = Arc::from(value);
        values.push(value.clone());
        ids.insert(value, id);
        id
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
/// resolves to, so repeated requests skip normalisation. Bounded: once `capacity` keys are
/// cached, new keys are resolved every time instead of being remembered.
#[derive(Debug)]
pub struct ResolveCache<V> {
    map: RwLock<AHashMap<Box<str>, V>>,
    capacity: usize,
}

impl<V: Copy> ResolveCache<V> {
    pub fn new(capacity: usize) -> ResolveCache<V> {
        ResolveCache {
            map: RwLock::new(AHashMap::new()),
            capacity,
        }
    }

    #[inline]
    pub fn get_or_resolve(&self, key: &str, resolve: impl FnOnce(&str) -> V) -> V {
        if let Some(value) = self.map.read().get(key) {
            return *value;
        }
        let value = resolve(key);
        let mut map = self.map.write();
        if map.len() < self.capacity {
            map.insert(key.into(), value);
        }
        value
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
        let cache = ResolveCache::new(2);
        let mut calls = 0;
        for key in ["a", "b", "c", "a", "c"] {
            cache.get_or_resolve(key, |k| {
                calls += 1;
                k.len()
            });
        }
        // a and b are remembered; c is resolved both times.
        assert_eq!(calls, 4);
        assert_eq!(cache.map.read().len(), 2);
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
