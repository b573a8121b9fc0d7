//! A small cache whose entries expire, shared by every remote lookup (keys, UVS, Guild).
//!
//! Bounded in entries: when full, expired entries go first, then the oldest. Time is passed
//! in, so tests can step it without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A bounded map whose entries stop being returned after their time to live.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    capacity: usize,
    entries: HashMap<K, Entry<V>>,
    inserted: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires: Instant,
    order: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        TtlCache { capacity: capacity.max(1), entries: HashMap::new(), inserted: 0 }
    }

    /// The value for `key` if present and not expired at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries.get(key).filter(|e| now < e.expires).map(|e| e.value.clone())
    }

    /// Stores `value` for `ttl` from `now`; a zero `ttl` stores nothing.
    pub fn insert(&mut self, key: K, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            self.entries.remove(&key);
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        self.inserted += 1;
        let expires = now.checked_add(ttl).unwrap_or(now + Duration::from_secs(86_400 * 365));
        self.entries.insert(key, Entry { value, expires, order: self.inserted });
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Entries held, expired or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, e| now < e.expires);
        if self.entries.len() < self.capacity {
            return;
        }
        let oldest = self.entries.iter().min_by_key(|(_, e)| e.order).map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn test_entry_expires_after_its_ttl() {
        let t0 = Instant::now();
        let mut cache = TtlCache::new(4);
        cache.insert("k", 1, MINUTE, t0);
        assert_eq!(cache.get(&"k", t0 + Duration::from_secs(59)), Some(1));
        assert_eq!(cache.get(&"k", t0 + MINUTE), None);
    }

    #[test]
    fn test_evicts_expired_then_oldest_when_full() {
        let t0 = Instant::now();
        let mut cache = TtlCache::new(2);
        cache.insert("short", 1, Duration::from_secs(1), t0);
        cache.insert("old", 2, MINUTE, t0);
        cache.insert("new", 3, MINUTE, t0 + Duration::from_secs(2));
        assert_eq!(cache.get(&"old", t0 + Duration::from_secs(2)), Some(2), "expired went first");
        cache.insert("newest", 4, MINUTE, t0 + Duration::from_secs(3));
        assert_eq!(cache.get(&"old", t0 + Duration::from_secs(3)), None, "then the oldest");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn test_zero_ttl_stores_nothing() {
        let t0 = Instant::now();
        let mut cache = TtlCache::new(2);
        cache.insert("k", 1, MINUTE, t0);
        cache.insert("k", 2, Duration::ZERO, t0);
        assert!(cache.is_empty());
    }
}
