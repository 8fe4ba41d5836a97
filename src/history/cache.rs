//! The histories kept between requests: one per (view definition, table version, snapshot),
//! built once (single flight: concurrent cold requests wait for the one build), shared by
//! every request on that version, least recently used dropped first when over the byte bound.
//!
//! Entries never go stale by themselves, since a key names an immutable version; the store
//! drops those whose version is neither current nor retained any more ([`HistoryCache::retain`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::ViewHistory;
use crate::cache::TierStats;

/// What a history is a history of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryKey {
    /// The table read.
    pub table: String,
    /// Its version.
    pub version: u64,
    /// The snapshot id of the open file (keeps a pinned version's rows apart from a current
    /// one with the same number, as the tiered cache's keys do).
    pub snapshot: u64,
    /// The definition the rows were read and grouped by (columns, keys, timestamps): two
    /// definitions of one table never share a history.
    pub definition: String,
}

struct Entry {
    history: Arc<ViewHistory>,
    bytes: u64,
    last_used: u64,
    built: Instant,
}

#[derive(Default)]
struct State {
    entries: HashMap<HistoryKey, Entry>,
    bytes: u64,
    tick: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
    /// Keys whose history was larger than the bound: their requests build side by side
    /// instead of queueing behind one another's builds, which would keep nothing anyway.
    too_large: std::collections::HashSet<HistoryKey>,
}

/// The kept histories, bounded by bytes (`cache.history_max_mb`).
pub struct HistoryCache {
    max_bytes: u64,
    state: Mutex<State>,
    builds: Mutex<HashMap<HistoryKey, Arc<Mutex<()>>>>,
}

impl std::fmt::Debug for HistoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl HistoryCache {
    /// A cache of at most `max_mb` MiB of histories; 0 keeps none (every request builds and
    /// drops its own, as before histories were kept).
    pub fn new(max_mb: u64) -> Self {
        Self {
            max_bytes: max_mb.saturating_mul(1024 * 1024),
            state: Mutex::default(),
            builds: Mutex::default(),
        }
    }

    /// Whether histories are kept at all (`cache.history_max_mb` above 0).
    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The history of `key`, built by `build` unless kept. Single flight per key: a caller
    /// arriving during a build waits for it and shares its result. A history larger than the
    /// whole bound is returned but not kept.
    pub fn get_or_build<E>(
        &self,
        key: &HistoryKey,
        build: impl FnOnce() -> Result<ViewHistory, E>,
    ) -> Result<Arc<ViewHistory>, E> {
        if self.max_bytes == 0 {
            self.state().misses += 1;
            return build().map(Arc::new);
        }
        if let Some(found) = self.lookup(key) {
            return Ok(found);
        }
        if self.state().too_large.contains(key) {
            self.state().misses += 1;
            return build().map(Arc::new);
        }
        let lock = {
            let mut builds = self.builds.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(builds.entry(key.clone()).or_default())
        };
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        // Whoever held the lock before may have built it.
        if let Some(found) = self.lookup(key) {
            return Ok(found);
        }
        self.state().misses += 1;
        let built = build().map(Arc::new);
        if let Ok(history) = &built {
            self.insert(key.clone(), Arc::clone(history));
        }
        drop(guard);
        self.builds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        built
    }

    fn lookup(&self, key: &HistoryKey) -> Option<Arc<ViewHistory>> {
        let mut state = self.state();
        state.tick += 1;
        let tick = state.tick;
        let found = state.entries.get_mut(key).map(|entry| {
            entry.last_used = tick;
            Arc::clone(&entry.history)
        });
        if found.is_some() {
            state.hits += 1;
        }
        found
    }

    fn insert(&self, key: HistoryKey, history: Arc<ViewHistory>) {
        let bytes = history.memory_bytes() as u64;
        if bytes > self.max_bytes {
            self.state().too_large.insert(key.clone());
            tracing::info!(
                table = %key.table,
                version = key.version,
                bytes,
                max_bytes = self.max_bytes,
                "a history larger than cache.history_max_mb is not kept; requests on it build their own"
            );
            return;
        }
        let mut state = self.state();
        while state.bytes + bytes > self.max_bytes {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = state.entries.remove(&oldest) {
                state.bytes -= gone.bytes;
                state.evictions += 1;
            }
        }
        state.tick += 1;
        let entry = Entry {
            history,
            bytes,
            last_used: state.tick,
            built: Instant::now(),
        };
        if let Some(old) = state.entries.insert(key, entry) {
            state.bytes -= old.bytes;
        }
        state.bytes += bytes;
    }

    /// Keeps only the entries `keep` accepts; returns how many were dropped.
    pub fn retain(&self, mut keep: impl FnMut(&HistoryKey) -> bool) -> usize {
        let mut state = self.state();
        state.too_large.retain(|key| keep(key));
        let before = state.entries.len();
        let mut freed = 0;
        state.entries.retain(|key, entry| {
            let kept = keep(key);
            if !kept {
                freed += entry.bytes;
            }
            kept
        });
        state.bytes -= freed;
        before - state.entries.len()
    }

    /// The (table, version) of every entry (and of every history found too large to keep),
    /// for deciding which are still wanted.
    pub fn versions(&self) -> Vec<(String, u64)> {
        let state = self.state();
        let mut all: Vec<(String, u64)> = state
            .entries
            .keys()
            .chain(&state.too_large)
            .map(|k| (k.table.clone(), k.version))
            .collect();
        drop(state);
        all.sort();
        all.dedup();
        all
    }

    /// Drops every entry; returns how many there were.
    pub fn clear(&self) -> usize {
        self.retain(|_| false)
    }

    /// The cache's figures in the tiered cache's shape, so reports show it beside the tiers.
    pub fn stats(&self) -> TierStats {
        let state = self.state();
        let items = state.entries.len() as u64;
        let average_age_seconds = if items == 0 {
            0.0
        } else {
            state
                .entries
                .values()
                .map(|e| e.built.elapsed().as_secs_f64())
                .sum::<f64>()
                / items as f64
        };
        TierStats {
            enabled: self.max_bytes > 0,
            disabled_reason: (self.max_bytes == 0)
                .then(|| "cache.history_max_mb is 0: every request builds its own".to_owned()),
            items,
            bytes: state.bytes,
            max_items: 0,
            max_bytes: self.max_bytes,
            hits: state.hits,
            misses: state.misses,
            evictions: state.evictions,
            expired: 0,
            average_age_seconds,
        }
    }
}
