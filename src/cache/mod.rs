//! Two cache tiers in front of Parquet: memory (LRU + TTL) over disk (sled).
//!
//! A lookup tries memory, then disk (a disk hit is promoted to memory), and a miss in both is
//! read from Parquet by the caller and stored in both. Keys carry the table version, so an
//! entry can never outlive the data it was read from; writes also drop their table's entries
//! before they return, which keeps memory for live data.

mod clock;
mod disk;
mod key;
mod memory;
mod stats;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use serde::Deserialize;

pub use clock::{Clock, ManualClock, SystemClock};
pub use disk::DiskCache;
pub use key::{CacheKey, ReadKind};
pub use memory::{MemoryCache, MemoryLimits};
pub use stats::TierStats;

const BYTES_PER_MIB: u64 = 1024 * 1024;

/// `[cache]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most entries in the memory tier; 0 disables it.
    pub memory_max_entries: usize,
    /// Most MiB in the memory tier.
    pub memory_max_mb: u64,
    /// Seconds a memory entry lives.
    pub memory_ttl_secs: u64,
    /// Most MiB in the disk tier; 0 disables it.
    pub disk_max_mb: u64,
    /// Most MiB of decoded view histories kept for historical requests (`crate::history`);
    /// 0 keeps none.
    #[serde(default = "default_history_max_mb")]
    pub history_max_mb: u64,
}

fn default_history_max_mb() -> u64 {
    512
}

impl CacheConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_ttl_secs == 0 && self.memory_max_entries > 0 {
            return Err(
                "cache.memory_ttl_secs must be at least 1 (or set cache.memory_max_entries = 0)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Where a cached read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The memory tier.
    Memory,
    /// The disk tier (now promoted to memory).
    Disk,
}

/// Both tiers' statistics.
#[derive(Debug, Clone)]
pub struct CacheStats {
    /// Memory tier.
    pub memory: TierStats,
    /// Disk tier.
    pub disk: TierStats,
}

/// The two tiers.
#[derive(Debug)]
pub struct TieredCache {
    memory: MemoryCache,
    disk: DiskCache,
}

impl TieredCache {
    /// Opens both tiers; the disk tier lives in `disk_dir`.
    pub fn open(config: &CacheConfig, disk_dir: &Path, clock: Arc<dyn Clock>) -> Self {
        let limits = MemoryLimits {
            max_entries: config.memory_max_entries,
            max_bytes: config.memory_max_mb.saturating_mul(BYTES_PER_MIB),
            ttl: Duration::from_secs(config.memory_ttl_secs),
        };
        Self {
            memory: MemoryCache::new(limits, clock),
            disk: DiskCache::open(disk_dir, config.disk_max_mb.saturating_mul(BYTES_PER_MIB)),
        }
    }

    /// The memory tier only: cheap enough to call on the event loop.
    pub fn get_memory(&self, key: &CacheKey) -> Option<RecordBatch> {
        self.memory.get(key)
    }

    /// The disk tier (blocking); a hit is promoted to memory.
    pub fn get_disk(&self, key: &CacheKey) -> Option<RecordBatch> {
        let batch = self.disk.get(key)?;
        self.memory.put(key.clone(), batch.clone());
        Some(batch)
    }

    /// Memory, then disk (blocking).
    pub fn get(&self, key: &CacheKey) -> Option<(RecordBatch, Tier)> {
        if let Some(batch) = self.memory.get(key) {
            return Some((batch, Tier::Memory));
        }
        self.get_disk(key).map(|b| (b, Tier::Disk))
    }

    /// Stores a freshly read batch in both tiers (blocking).
    pub fn put(&self, key: CacheKey, batch: &RecordBatch) {
        self.disk.put(&key, batch);
        self.memory.put(key, batch.clone());
    }

    /// Drops every entry of `table` from both tiers (blocking).
    pub fn invalidate_table(&self, table: &str) -> usize {
        self.memory.invalidate_table(table) + self.disk.invalidate_table(table)
    }

    /// Drops everything (blocking); returns how many entries both tiers held (an entry in
    /// both tiers counts twice, as in [`Self::invalidate_table`]).
    pub fn clear(&self) -> usize {
        self.memory.clear() + self.disk.clear()
    }

    /// Flushes the disk tier (at shutdown).
    pub fn flush(&self) {
        self.disk.flush();
    }

    /// Both tiers' statistics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            memory: self.memory.stats(),
            disk: self.disk.stats(),
        }
    }

    /// Why the disk tier is off, if it is (no lock, no I/O: for `/health`).
    pub fn disk_disabled_reason(&self) -> Option<String> {
        self.disk.disabled_reason()
    }

    /// The disk tier, for tests of corruption handling.
    #[doc(hidden)]
    pub fn disk(&self) -> &DiskCache {
        &self.disk
    }
}
