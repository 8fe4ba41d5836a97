//! The memory tier: an LRU of immutable batches with a per-entry TTL, bounded by entry count
//! and by the entries' real size in bytes.
//!
//! Values are `RecordBatch`es, whose arrays are immutable `Arc`s: a caller can never change
//! what another reads (the 2.5 sketch handed out shared mutable frames). `max_entries = 0`
//! disables the tier instead of crashing. An entry larger than the byte budget is not stored.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use lru::LruCache;

use super::clock::Clock;
use super::key::CacheKey;
use super::stats::{Counters, TierStats};

/// Bounds of the memory tier.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    /// Most entries; 0 disables the tier.
    pub max_entries: usize,
    /// Most bytes, by the entries' Arrow memory size.
    pub max_bytes: u64,
    /// Time to live of an entry.
    pub ttl: Duration,
}

struct Entry {
    batch: RecordBatch,
    bytes: u64,
    inserted: Instant,
}

struct Inner {
    lru: LruCache<CacheKey, Entry>,
    bytes: u64,
}

/// The memory tier.
pub struct MemoryCache {
    inner: Mutex<Inner>,
    limits: MemoryLimits,
    clock: Arc<dyn Clock>,
    counters: Counters,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MemoryCache {
    /// An empty tier.
    pub fn new(limits: MemoryLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            limits,
            clock,
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent before anything that could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the tier stores anything.
    pub fn enabled(&self) -> bool {
        self.limits.max_entries > 0 && self.limits.max_bytes > 0
    }

    /// The entry for `key`, if present and not expired (an expired entry is dropped).
    pub fn get(&self, key: &CacheKey) -> Option<RecordBatch> {
        if !self.enabled() {
            self.counters.miss();
            return None;
        }
        let now = self.clock.now();
        let mut inner = self.lock();
        let expired = match inner.lru.get(key) {
            None => {
                drop(inner);
                self.counters.miss();
                return None;
            }
            Some(entry) if now.saturating_duration_since(entry.inserted) >= self.limits.ttl => true,
            Some(entry) => {
                let batch = entry.batch.clone();
                drop(inner);
                self.counters.hit();
                return Some(batch);
            }
        };
        if expired && let Some(entry) = inner.lru.pop(key) {
            inner.bytes -= entry.bytes;
        }
        drop(inner);
        self.counters.expired();
        self.counters.miss();
        None
    }

    /// Stores `batch` under `key`, evicting least recently used entries to stay in bounds.
    pub fn put(&self, key: CacheKey, batch: RecordBatch) {
        if !self.enabled() {
            return;
        }
        let bytes = batch.get_array_memory_size() as u64;
        if bytes > self.limits.max_bytes {
            return;
        }
        let entry = Entry {
            batch,
            bytes,
            inserted: self.clock.now(),
        };
        let mut evicted = 0;
        {
            let mut inner = self.lock();
            if let Some(old) = inner.lru.put(key, entry) {
                inner.bytes -= old.bytes;
            }
            inner.bytes += bytes;
            while inner.lru.len() > self.limits.max_entries || inner.bytes > self.limits.max_bytes {
                match inner.lru.pop_lru() {
                    Some((_, old)) => {
                        inner.bytes -= old.bytes;
                        evicted += 1;
                    }
                    None => break,
                }
            }
        }
        if evicted > 0 {
            self.counters.evicted(evicted);
        }
    }

    /// Drops every entry of `table` (any version); returns how many.
    pub fn invalidate_table(&self, table: &str) -> usize {
        let mut inner = self.lock();
        let doomed: Vec<CacheKey> = inner
            .lru
            .iter()
            .filter(|(k, _)| k.table == table)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &doomed {
            if let Some(old) = inner.lru.pop(key) {
                inner.bytes -= old.bytes;
            }
        }
        doomed.len()
    }

    /// Drops everything.
    pub fn clear(&self) -> usize {
        let mut inner = self.lock();
        let removed = inner.lru.len();
        inner.lru.clear();
        inner.bytes = 0;
        removed
    }

    /// A snapshot of size and counters.
    pub fn stats(&self) -> TierStats {
        let now = self.clock.now();
        let (items, bytes, age_sum) = {
            let inner = self.lock();
            let age: f64 = inner
                .lru
                .iter()
                .map(|(_, e)| now.saturating_duration_since(e.inserted).as_secs_f64())
                .sum();
            (inner.lru.len() as u64, inner.bytes, age)
        };
        let (hits, misses, evictions, expired) = self.counters.read();
        TierStats {
            enabled: self.enabled(),
            disabled_reason: (!self.enabled())
                .then(|| "cache.memory_max_entries or cache.memory_max_mb is 0".to_owned()),
            items,
            bytes,
            max_items: self.limits.max_entries as u64,
            max_bytes: self.limits.max_bytes,
            hits,
            misses,
            evictions,
            expired,
            average_age_seconds: if items == 0 {
                0.0
            } else {
                age_sum / items as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;
    use crate::cache::clock::ManualClock;
    use crate::cache::key::ReadKind;

    fn key(n: u64) -> CacheKey {
        CacheKey {
            table: format!("t{}", n % 2),
            version: n,
            snapshot: 0,
            kind: ReadKind::Page {
                columns: None,
                offset: 0,
                limit: 1,
            },
        }
    }

    fn batch(rows: i64) -> RecordBatch {
        RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..rows)) as _)])
            .expect("batch")
    }

    fn cache(max_entries: usize, max_bytes: u64, ttl_secs: u64) -> (MemoryCache, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let limits = MemoryLimits {
            max_entries,
            max_bytes,
            ttl: Duration::from_secs(ttl_secs),
        };
        (MemoryCache::new(limits, clock.clone()), clock)
    }

    #[test]
    fn entries_expire_after_their_ttl_on_a_manual_clock() {
        let (cache, clock) = cache(10, 1 << 20, 60);
        cache.put(key(1), batch(3));
        clock.advance(Duration::from_secs(59));
        assert!(cache.get(&key(1)).is_some());
        clock.advance(Duration::from_secs(1));
        assert!(cache.get(&key(1)).is_none());
        let stats = cache.stats();
        assert_eq!(
            (
                stats.hits,
                stats.misses,
                stats.expired,
                stats.items,
                stats.bytes
            ),
            (1, 1, 1, 0, 0)
        );
    }

    #[test]
    fn least_recently_used_entry_is_evicted_first() {
        let (cache, _) = cache(2, 1 << 20, 60);
        cache.put(key(1), batch(1));
        cache.put(key(2), batch(1));
        assert!(cache.get(&key(1)).is_some()); // 1 is now more recent than 2
        cache.put(key(3), batch(1));
        assert!(cache.get(&key(2)).is_none());
        assert!(cache.get(&key(1)).is_some());
        assert!(cache.get(&key(3)).is_some());
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn byte_bound_evicts_and_oversized_entries_are_not_stored() {
        let one = batch(1000).get_array_memory_size() as u64;
        let (cache, _) = cache(100, one * 2, 60);
        cache.put(key(1), batch(1000));
        cache.put(key(2), batch(1000));
        cache.put(key(3), batch(1000));
        let stats = cache.stats();
        assert_eq!(stats.items, 2);
        assert!(stats.bytes <= one * 2);
        cache.put(key(4), batch(10_000));
        assert!(cache.get(&key(4)).is_none());
    }

    #[test]
    fn zero_entries_disables_the_tier_without_crashing() {
        let (cache, _) = cache(0, 1 << 20, 60);
        cache.put(key(1), batch(1));
        assert!(cache.get(&key(1)).is_none());
        assert!(!cache.stats().enabled);
    }

    #[test]
    fn invalidation_matches_the_table_name_exactly() {
        let (cache, _) = cache(10, 1 << 20, 60);
        let named = |table: &str| CacheKey {
            table: table.into(),
            version: 1,
            snapshot: 0,
            kind: ReadKind::Page {
                columns: None,
                offset: 0,
                limit: 1,
            },
        };
        cache.put(named("user_pref"), batch(1));
        cache.put(named("user_preferences_v2"), batch(1));
        assert_eq!(cache.invalidate_table("user_pref"), 1);
        assert!(cache.get(&named("user_preferences_v2")).is_some());
    }
}
