//! A small bounded cache whose entries expire, for TokenReview and SubjectAccessReview answers
//! (upstream caches both for 10 s by default).
//!
//! Lookups and inserts take a short mutex; when the cache is full, expired entries are purged
//! first and then the entry closest to expiry is evicted, so memory stays bounded whatever the
//! traffic.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A map from `K` to `V` whose entries live for a per-entry time to live, holding at most
/// `capacity` entries.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The live value for `key`, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_at(key, Instant::now())
    }

    /// Stores `value` for `ttl`; a zero `ttl` stores nothing.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        self.insert_at(key, value, ttl, Instant::now());
    }

    /// How many entries (live or expired but not yet purged) the cache holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get_at(&self, key: &K, now: Instant) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert_at(&self, key: K, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                }
            }
        }
        entries.insert(key, (now + ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let cache = TtlCache::new(8);
        let t0 = Instant::now();
        cache.insert_at("a", 1, Duration::from_secs(10), t0);
        assert_eq!(cache.get_at(&"a", t0 + Duration::from_secs(9)), Some(1));
        assert_eq!(cache.get_at(&"a", t0 + Duration::from_secs(10)), None);
        assert!(cache.is_empty(), "an expired entry is dropped on lookup");
        cache.insert_at("z", 1, Duration::ZERO, t0);
        assert!(cache.is_empty(), "a zero TTL caches nothing");
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let cache = TtlCache::new(3);
        let t0 = Instant::now();
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert_at(key, i, Duration::from_secs(10 + i as u64), t0);
        }
        // Full and nothing expired: the entry closest to expiry ("a") goes.
        cache.insert_at("d", 3, Duration::from_secs(20), t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get_at(&"a", t0), None);
        assert_eq!(cache.get_at(&"d", t0), Some(3));
        // Full with expired entries: those go first.
        let later = t0 + Duration::from_secs(12);
        cache.insert_at("e", 4, Duration::from_secs(10), later);
        assert_eq!(cache.len(), 2, "b and c had expired");
        assert_eq!(cache.get_at(&"d", later), Some(3));
        // Overwriting a present key never evicts another.
        cache.insert_at("e", 5, Duration::from_secs(10), later);
        assert_eq!(cache.get_at(&"e", later), Some(5));
        assert_eq!(cache.get_at(&"d", later), Some(3));
    }
}
