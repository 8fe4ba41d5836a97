//! Counters shared by both tiers, and the snapshot reported by `/cache/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters of one tier.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
}

impl Counters {
    /// Counts a hit.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a miss.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts `n` evictions (entries dropped to make room).
    pub fn evicted(&self, n: u64) {
        self.evictions.fetch_add(n, Ordering::Relaxed);
    }
    /// Counts an entry dropped because its TTL passed.
    pub fn expired(&self) {
        self.expired.fetch_add(1, Ordering::Relaxed);
    }
    /// Current values: (hits, misses, evictions, expired).
    pub fn read(&self) -> (u64, u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.evictions.load(Ordering::Relaxed),
            self.expired.load(Ordering::Relaxed),
        )
    }
}

/// A point-in-time view of one tier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierStats {
    /// Whether the tier is in use (a disabled tier reports zeros).
    pub enabled: bool,
    /// Why the tier is off, when it is.
    pub disabled_reason: Option<String>,
    /// Entries held.
    pub items: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Entry bound (0 when the tier is bounded by bytes only).
    pub max_items: u64,
    /// Byte bound.
    pub max_bytes: u64,
    /// Hits since start (clearing the cache does not reset counters).
    pub hits: u64,
    /// Misses since start.
    pub misses: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Entries dropped because their TTL passed.
    pub expired: u64,
    /// Mean age of the entries held, in seconds.
    pub average_age_seconds: f64,
}

impl TierStats {
    /// `hits / (hits + misses)`, 0 when there were no lookups.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }

    /// The larger of the entry and byte usage ratios.
    pub fn usage_ratio(&self) -> f64 {
        let by_items = if self.max_items == 0 {
            0.0
        } else {
            self.items as f64 / self.max_items as f64
        };
        let by_bytes = if self.max_bytes == 0 {
            0.0
        } else {
            self.bytes as f64 / self.max_bytes as f64
        };
        by_items.max(by_bytes)
    }
}
