//! A small cache whose entries expire, shared by every remote lookup (keys, UVS, Guild), and a
//! rate limit for what outside input can make us fetch.
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

    /// Whether `key` has an entry, even an expired one (it was known once).
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Stores `value` for `ttl` from `now` (at most [`MAX_TTL`]); a zero `ttl` stores nothing.
    pub fn insert(&mut self, key: K, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            self.entries.remove(&key);
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        self.inserted += 1;
        let expires = later(now, ttl.min(MAX_TTL));
        self.entries.insert(key, Entry { value, expires, order: self.inserted });
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Forgets every entry for which `drop(key, value)` is true.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|key, entry| !drop(key, &entry.value));
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

/// The longest any entry is kept: one year. Longer lifetimes (from configuration or from a
/// server's reply) are read as this.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 86_400);

/// `now + ttl`, or the farthest time the clock can represent: never a panic.
pub fn later(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).or_else(|| now.checked_add(MAX_TTL)).unwrap_or(now)
}

/// A token bucket: up to `burst` events at once, then `per_second` on average.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket. Rates that are not positive numbers allow one event per second.
    pub fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 { per_second } else { 1.0 };
        let burst = if burst.is_finite() && burst >= 1.0 { burst } else { 1.0 };
        RateLimit { per_second, burst, tokens: burst, last: now }
    }

    /// Takes one event's worth if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
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
    fn test_huge_ttl_never_overflows() {
        let t0 = Instant::now();
        let mut cache = TtlCache::new(2);
        cache.insert("k", 1, Duration::MAX, t0);
        assert_eq!(cache.get(&"k", t0 + Duration::from_secs(86_400 * 364)), Some(1));
        assert_eq!(later(t0, Duration::MAX), t0 + MAX_TTL);
    }

    #[test]
    fn test_rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(2.0, 3.0, t0);
        assert_eq!((0..5).filter(|_| limit.try_take(t0)).count(), 3, "the burst");
        assert!(!limit.try_take(t0 + Duration::from_millis(100)));
        assert!(limit.try_take(t0 + Duration::from_millis(500)), "one more after 1/rate");
        assert_eq!((0..10).filter(|_| limit.try_take(t0 + Duration::from_secs(60))).count(), 3);
        let mut odd = RateLimit::new(f64::NAN, -1.0, t0);
        assert!(odd.try_take(t0) && !odd.try_take(t0));
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
