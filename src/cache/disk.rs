//! The disk tier: sled under `<data root>/cache/`, values as Arrow IPC stream bytes.
//!
//! Three trees:
//! - `entries`: sha256(key) → header (table name, sequence, insert time) + IPC bytes;
//! - `by_age`: sequence ‖ digest → size ‖ insert time, so eviction walks the oldest entries
//!   first without listing the store;
//! - `by_table`: table ‖ 0 ‖ digest → sequence, so invalidating a table is a prefix scan.
//!
//! Total bytes and items are kept in atomics (summed once at open). When a write takes the
//! tier over its budget, the oldest entries go until it is at 80 %. An entry larger than the
//! budget is not stored (the 2.5 sketch wrote it and deleted it at once). A corrupt entry is
//! deleted and counted as a miss. If sled cannot open (another process holds the lock, the
//! files are damaged), the tier is off and says why; the server keeps serving without it.
//!
//! Values are Arrow IPC, never a code-carrying format: a planted file can at worst fail to
//! decode.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::compute::concat_batches;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use super::key::CacheKey;
use super::stats::{Counters, TierStats};

/// sled's own in-memory page cache for the disk tier. sled's default is 1 GiB per database,
/// outside every budget of `[cache]`; the memory tier already holds the hot entries, so the
/// disk tier only needs enough to keep its index pages resident.
const SLED_PAGE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Fraction of the budget eviction brings the tier down to.
const EVICT_TO: f64 = 0.8;

struct Trees {
    db: sled::Db,
    entries: sled::Tree,
    by_age: sled::Tree,
    by_table: sled::Tree,
}

/// The disk tier.
pub struct DiskCache {
    trees: Result<Trees, String>,
    max_bytes: u64,
    bytes: AtomicU64,
    items: AtomicU64,
    inserted_ms_sum: AtomicU64,
    sequence: AtomicU64,
    counters: Counters,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Why an entry could not be decoded.
#[derive(Debug, thiserror::Error)]
enum Corrupt {
    #[error("entry header is truncated")]
    Header,
    #[error("entry payload is not Arrow IPC: {0}")]
    Ipc(#[from] arrow::error::ArrowError),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl DiskCache {
    /// Opens the tier at `dir` with a budget of `max_bytes` (0 disables it).
    pub fn open(dir: &Path, max_bytes: u64) -> Self {
        let trees = if max_bytes == 0 {
            Err("cache.disk_max_mb is 0".to_owned())
        } else {
            Self::open_trees(dir)
                .map_err(|e| format!("cannot open the disk cache at {}: {e}", dir.display()))
        };
        // Turned off on purpose (a command beside the server, or by config) is no warning.
        if let Err(reason) = &trees
            && max_bytes > 0
        {
            tracing::warn!(%reason, "disk cache tier is off; serving from memory and Parquet only");
        }
        let cache = Self {
            trees,
            max_bytes,
            bytes: AtomicU64::new(0),
            items: AtomicU64::new(0),
            inserted_ms_sum: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
            counters: Counters::default(),
        };
        cache.recount();
        cache
    }

    fn open_trees(dir: &Path) -> sled::Result<Trees> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_PAGE_CACHE_BYTES)
            .open()?;
        Ok(Trees {
            entries: db.open_tree("entries")?,
            by_age: db.open_tree("by_age")?,
            by_table: db.open_tree("by_table")?,
            db,
        })
    }

    /// Sums sizes and finds the next sequence number: once, at open.
    fn recount(&self) {
        let Ok(trees) = &self.trees else { return };
        let (mut bytes, mut items, mut inserted, mut last_seq) = (0u64, 0u64, 0u64, 0u64);
        for (key, value) in trees.by_age.iter().flatten() {
            let (size, at) = parse_age(&value);
            bytes += size;
            items += 1;
            inserted += at;
            last_seq = last_seq.max(read_u64(&key).unwrap_or(0));
        }
        self.bytes.store(bytes, Ordering::Relaxed);
        self.items.store(items, Ordering::Relaxed);
        self.inserted_ms_sum.store(inserted, Ordering::Relaxed);
        self.sequence.store(last_seq + 1, Ordering::Relaxed);
    }

    /// Whether the tier is on.
    pub fn enabled(&self) -> bool {
        self.trees.is_ok()
    }

    /// The entry for `key`, if stored and readable. A corrupt entry is deleted.
    pub fn get(&self, key: &CacheKey) -> Option<RecordBatch> {
        let Ok(trees) = &self.trees else {
            self.counters.miss();
            return None;
        };
        let digest = key.digest();
        let stored = match trees.entries.get(digest) {
            Ok(Some(v)) => v,
            Ok(None) => {
                self.counters.miss();
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "disk cache read failed; treating as a miss");
                self.counters.miss();
                return None;
            }
        };
        match decode(&stored) {
            Ok(batch) => {
                self.counters.hit();
                Some(batch)
            }
            Err(e) => {
                tracing::warn!(error = %e, table = %key.table, "corrupt disk cache entry deleted");
                self.remove(trees, &digest);
                self.counters.miss();
                None
            }
        }
    }

    /// Stores `batch` under `key`, evicting the oldest entries when over budget.
    pub fn put(&self, key: &CacheKey, batch: &RecordBatch) {
        let Ok(trees) = &self.trees else { return };
        let payload = match encode(batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode a batch for the disk cache");
                return;
            }
        };
        let table = key.table.as_bytes();
        let size = (payload.len() + table.len() + HEADER_FIXED) as u64;
        if size > self.max_bytes {
            return;
        }
        let digest = key.digest();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let at = now_ms();
        let mut value = Vec::with_capacity(size as usize);
        value.extend_from_slice(&(table.len() as u16).to_be_bytes());
        value.extend_from_slice(table);
        value.extend_from_slice(&seq.to_be_bytes());
        value.extend_from_slice(&at.to_be_bytes());
        value.extend_from_slice(&payload);
        // A concurrent miss may have stored the same key: replace it cleanly.
        self.remove(trees, &digest);
        let written = trees
            .entries
            .insert(digest, value)
            .and_then(|_| {
                trees
                    .by_age
                    .insert(age_key(seq, &digest), age_value(size, at))
            })
            .and_then(|_| {
                trees
                    .by_table
                    .insert(table_key(table, &digest), &seq.to_be_bytes())
            });
        if let Err(e) = written {
            tracing::warn!(error = %e, "disk cache write failed");
            self.remove(trees, &digest);
            return;
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.items.fetch_add(1, Ordering::Relaxed);
        self.inserted_ms_sum.fetch_add(at, Ordering::Relaxed);
        if self.bytes.load(Ordering::Relaxed) > self.max_bytes {
            self.evict(trees);
        }
    }

    /// Removes the oldest entries until the tier is at 80 % of its budget.
    fn evict(&self, trees: &Trees) {
        let target = (self.max_bytes as f64 * EVICT_TO) as u64;
        let mut evicted = 0;
        while self.bytes.load(Ordering::Relaxed) > target {
            let Ok(Some((key, _))) = trees.by_age.first() else {
                break;
            };
            let Some(digest) = key.get(8..40) else {
                let _ = trees.by_age.remove(&key);
                continue;
            };
            let mut d = [0u8; 32];
            d.copy_from_slice(digest);
            if self.remove(trees, &d) {
                evicted += 1;
            } else {
                // A dangling index entry (a crash between tree writes): drop it.
                let _ = trees.by_age.remove(&key);
            }
        }
        self.counters.evicted(evicted);
    }

    /// Removes one entry and its index rows; true if it existed.
    fn remove(&self, trees: &Trees, digest: &[u8; 32]) -> bool {
        let Ok(Some(value)) = trees.entries.remove(digest) else {
            return false;
        };
        if let Some((table, seq, at)) = parse_header(&value) {
            let _ = trees.by_age.remove(age_key(seq, digest));
            let _ = trees.by_table.remove(table_key(table, digest));
            let size = value.len() as u64;
            let _ = self
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(size))
                });
            let _ = self
                .items
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
            let _ = self
                .inserted_ms_sum
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                    Some(s.saturating_sub(at))
                });
        }
        true
    }

    /// Drops every entry of `table`; returns how many.
    pub fn invalidate_table(&self, table: &str) -> usize {
        let Ok(trees) = &self.trees else { return 0 };
        let mut prefix = table.as_bytes().to_vec();
        prefix.push(0);
        let digests: Vec<[u8; 32]> = trees
            .by_table
            .scan_prefix(&prefix)
            .keys()
            .flatten()
            .filter_map(|k| {
                k.get(prefix.len()..)
                    .and_then(|d| <[u8; 32]>::try_from(d).ok())
            })
            .collect();
        let mut removed = 0;
        for digest in &digests {
            if self.remove(trees, digest) {
                removed += 1;
            }
            let mut key = prefix.clone();
            key.extend_from_slice(digest);
            let _ = trees.by_table.remove(key);
        }
        removed
    }

    /// Drops everything.
    pub fn clear(&self) -> usize {
        let Ok(trees) = &self.trees else { return 0 };
        // Counted before clearing (a scan of the keys): the `items` counter is only an
        // estimate across restarts.
        let removed = trees.entries.len();
        for tree in [&trees.entries, &trees.by_age, &trees.by_table] {
            if let Err(e) = tree.clear() {
                tracing::warn!(error = %e, "could not clear the disk cache");
            }
        }
        self.bytes.store(0, Ordering::Relaxed);
        self.items.store(0, Ordering::Relaxed);
        self.inserted_ms_sum.store(0, Ordering::Relaxed);
        removed
    }

    /// Writes pending data to disk (at shutdown).
    pub fn flush(&self) {
        if let Ok(trees) = &self.trees
            && let Err(e) = trees.db.flush()
        {
            tracing::warn!(error = %e, "could not flush the disk cache");
        }
    }

    /// Overwrites the payload of `key`'s entry with garbage; for tests of corruption handling.
    #[doc(hidden)]
    pub fn corrupt_for_test(&self, key: &CacheKey) -> bool {
        let Ok(trees) = &self.trees else { return false };
        let digest = key.digest();
        match trees.entries.get(digest) {
            Ok(Some(value)) => {
                let mut bad = value.to_vec();
                let keep = bad.len().min(HEADER_FIXED + key.table.len());
                bad.truncate(keep);
                bad.extend_from_slice(b"not arrow ipc");
                trees.entries.insert(digest, bad).is_ok()
            }
            _ => false,
        }
    }

    /// Why the tier is off (its lock held, its files damaged, configured off), if it is.
    pub fn disabled_reason(&self) -> Option<String> {
        self.trees.as_ref().err().cloned()
    }

    /// A snapshot of size and counters.
    pub fn stats(&self) -> TierStats {
        let (hits, misses, evictions, expired) = self.counters.read();
        let items = self.items.load(Ordering::Relaxed);
        let average_age_seconds = if items == 0 {
            0.0
        } else {
            let mean_inserted = self.inserted_ms_sum.load(Ordering::Relaxed) as f64 / items as f64;
            ((now_ms() as f64 - mean_inserted) / 1000.0).max(0.0)
        };
        TierStats {
            enabled: self.enabled(),
            disabled_reason: self.trees.as_ref().err().cloned(),
            items,
            bytes: self.bytes.load(Ordering::Relaxed),
            max_items: 0,
            max_bytes: self.max_bytes,
            hits,
            misses,
            evictions,
            expired,
            average_age_seconds,
        }
    }
}

/// Table-name length (2) + sequence (8) + insert time (8).
const HEADER_FIXED: usize = 18;

fn parse_header(value: &[u8]) -> Option<(&[u8], u64, u64)> {
    let len = u16::from_be_bytes(value.get(0..2)?.try_into().ok()?) as usize;
    let table = value.get(2..2 + len)?;
    let seq = read_u64(value.get(2 + len..10 + len)?)?;
    let at = read_u64(value.get(10 + len..18 + len)?)?;
    Some((table, seq, at))
}

fn decode(value: &[u8]) -> Result<RecordBatch, Corrupt> {
    let (table, _, _) = parse_header(value).ok_or(Corrupt::Header)?;
    let payload = value
        .get(HEADER_FIXED + table.len()..)
        .ok_or(Corrupt::Header)?;
    let reader = StreamReader::try_new(Cursor::new(payload), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?))
}

fn age_key(seq: u64, digest: &[u8; 32]) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(digest);
    key
}

fn age_value(size: u64, at: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(16);
    value.extend_from_slice(&size.to_be_bytes());
    value.extend_from_slice(&at.to_be_bytes());
    value
}

fn parse_age(value: &[u8]) -> (u64, u64) {
    (
        read_u64(value).unwrap_or(0),
        value.get(8..).and_then(read_u64).unwrap_or(0),
    )
}

fn table_key(table: &[u8], digest: &[u8; 32]) -> Vec<u8> {
    let mut key = Vec::with_capacity(table.len() + 33);
    key.extend_from_slice(table);
    key.push(0);
    key.extend_from_slice(digest);
    key
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;
    use crate::cache::key::ReadKind;

    fn key(table: &str, version: u64) -> CacheKey {
        CacheKey {
            table: table.into(),
            version,
            snapshot: 0,
            kind: ReadKind::Page {
                columns: None,
                offset: 0,
                limit: 10,
            },
        }
    }

    fn batch(rows: i64) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("x", Arc::new(Int64Array::from_iter_values(0..rows)) as _),
            (
                "s",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("v{i}")),
                )) as _,
            ),
        ])
        .expect("batch")
    }

    #[test]
    fn round_trips_batches_and_counts_hits_and_misses() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = DiskCache::open(dir.path(), 10 << 20);
        assert!(cache.get(&key("t", 1)).is_none());
        cache.put(&key("t", 1), &batch(100));
        assert_eq!(cache.get(&key("t", 1)), Some(batch(100)));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.items), (1, 1, 1));
        Ok(())
    }

    #[test]
    fn a_corrupt_entry_is_a_miss_and_is_deleted() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = DiskCache::open(dir.path(), 10 << 20);
        cache.put(&key("t", 1), &batch(10));
        assert!(cache.corrupt_for_test(&key("t", 1)));
        assert!(cache.get(&key("t", 1)).is_none());
        assert_eq!(cache.stats().items, 0);
        Ok(())
    }

    #[test]
    fn over_budget_evicts_oldest_first_down_to_80_percent() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let one = encode(&batch(1000))?.len() as u64 + 19;
        let cache = DiskCache::open(dir.path(), one * 5);
        for v in 0..6 {
            cache.put(&key("t", v), &batch(1000));
        }
        let stats = cache.stats();
        assert!(stats.bytes <= one * 4, "{stats:?}");
        assert!(stats.evictions >= 2);
        assert!(cache.get(&key("t", 0)).is_none());
        assert!(cache.get(&key("t", 5)).is_some());
        // An entry bigger than the whole budget is simply not stored.
        cache.put(&key("big", 1), &batch(100_000));
        assert!(cache.get(&key("big", 1)).is_none());
        Ok(())
    }

    #[test]
    fn invalidation_drops_only_that_table() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = DiskCache::open(dir.path(), 10 << 20);
        cache.put(&key("user_pref", 1), &batch(10));
        cache.put(&key("user_pref", 2), &batch(10));
        cache.put(&key("user_preferences_v2", 1), &batch(10));
        assert_eq!(cache.invalidate_table("user_pref"), 2);
        assert!(cache.get(&key("user_preferences_v2", 1)).is_some());
        assert_eq!(cache.stats().items, 1);
        Ok(())
    }

    #[test]
    fn a_locked_directory_turns_the_tier_off_with_a_reason()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = DiskCache::open(dir.path(), 10 << 20);
        assert!(first.enabled());
        let second = DiskCache::open(dir.path(), 10 << 20);
        assert!(!second.enabled());
        assert!(
            second
                .stats()
                .disabled_reason
                .is_some_and(|r| r.contains("cannot open"))
        );
        second.put(&key("t", 1), &batch(1));
        assert!(second.get(&key("t", 1)).is_none());
        Ok(())
    }
}
