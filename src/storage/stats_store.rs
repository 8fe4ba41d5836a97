//! The statistics stored with each table version (`crate::stats`): computed while the
//! version is written, kept beside it, and read back without decoding the table.
//!
//! Where: the local kind keeps `metadata/<group>/<name>.stats/<version>.json` (written
//! atomically, like the sidecar), the s3 kind a write-once object per version (see
//! `remote::stats`). Who writes them: a save, replace or restore (the batch being written),
//! an append (the previous version's statistics merged with the appended rows'), and, for a
//! version that has none (a file another tool wrote, a version older than statistics),
//! whoever first asks for them ([`Storage::stats_of`], one computation per version however
//! many ask at once). A fold keeps the version, so its statistics stay. The history sweep
//! removes the statistics of the versions it drops.
//!
//! Hazards: statistics are an addition to a write, never a condition of it: a failure to
//! compute or store them is logged and the version is left without, to be computed when
//! first asked for.

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::error::{Result, StorageError};
use super::layout::Layout;
use super::writer::write_atomic;
use super::{Storage, TableHandle, guard, typed};
use crate::model::{GroupName, TableName};
use crate::stats::VersionStats;

/// Parsed statistics kept in memory: an append merges into its previous version's without
/// reading them back, and `/metrics` reads them per scrape.
pub(super) const CACHED_STATS: usize = 64;

/// `[stats]`: per-column statistics of every table version, and the drift between versions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Compute and store statistics with every write, and serve the stats and drift routes.
    pub enabled: bool,
    /// The population stability index at or over which a column counts as drifted.
    pub psi_threshold: f64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            psi_threshold: 0.2,
        }
    }
}

impl StatsConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.psi_threshold.is_finite() && self.psi_threshold > 0.0) {
            return Err("stats.psi_threshold must be a number above 0 (0.2 is usual)".into());
        }
        Ok(())
    }
}

/// A version of a table: what statistics are kept per.
type VersionKey = (TableName, u64);

/// Parsed statistics by (table, version), and the computations in progress.
#[derive(Debug)]
pub(super) struct StatsMemory {
    parsed: Mutex<lru::LruCache<VersionKey, Arc<VersionStats>>>,
    flights: Mutex<HashMap<VersionKey, Arc<Mutex<()>>>>,
}

impl Default for StatsMemory {
    fn default() -> Self {
        Self {
            parsed: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(CACHED_STATS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl Storage {
    /// Whether versions get statistics (`stats.enabled`).
    pub fn stats_enabled(&self) -> bool {
        self.config.stats.enabled
    }

    /// `[stats]`.
    pub fn stats_config(&self) -> &StatsConfig {
        &self.config.stats
    }

    /// Stores `stats` as the statistics of version `version` of `group/name`. A failure is
    /// logged, not returned: the write they describe stands without them.
    pub(super) fn keep_stats(
        &self,
        group: &GroupName,
        name: &TableName,
        version: u64,
        stats: VersionStats,
    ) -> Arc<VersionStats> {
        let stats = Arc::new(stats);
        guard(&self.stats_memory.parsed).put((name.clone(), version), Arc::clone(&stats));
        if let Err(e) = self.write_stats(group, name, version, &stats) {
            tracing::warn!(table = %name, version, error = %e, "could not store the version's statistics; they are computed again when asked for");
        }
        stats
    }

    fn write_stats(
        &self,
        group: &GroupName,
        name: &TableName,
        version: u64,
        stats: &VersionStats,
    ) -> Result<()> {
        let path = self.layout.stats_path(group, name, version);
        let bytes = serde_json::to_vec(stats).map_err(|source| StorageError::Metadata {
            path: path.clone(),
            source,
        })?;
        if let Some(remote) = &self.remote {
            return remote.put_stats(name, version, bytes);
        }
        self.create_dirs_durably(&self.layout.stats_dir(group, name))?;
        write_atomic(&path, |mut file| {
            use std::io::Write as _;
            file.write_all(&bytes)
                .map_err(|e| StorageError::io(&path, e))
        })
    }

    /// The stored statistics of version `version` of `group/name`; `None` when it has none
    /// (or they cannot be parsed: they are then computed again). Never decodes the table.
    pub fn stored_stats(
        &self,
        group: &GroupName,
        name: &TableName,
        version: u64,
    ) -> Result<Option<Arc<VersionStats>>> {
        let key = (name.clone(), version);
        if let Some(stats) = guard(&self.stats_memory.parsed).get(&key) {
            return Ok(Some(Arc::clone(stats)));
        }
        let path = self.layout.stats_path(group, name, version);
        let bytes = match &self.remote {
            Some(remote) => match remote.get_stats(name, version)? {
                Some(bytes) => bytes.to_vec(),
                None => return Ok(None),
            },
            None => match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StorageError::io(&path, e)),
            },
        };
        match serde_json::from_slice::<VersionStats>(&bytes) {
            Ok(stats) => {
                let stats = Arc::new(stats);
                guard(&self.stats_memory.parsed).put(key, Arc::clone(&stats));
                Ok(Some(stats))
            }
            Err(e) => {
                tracing::warn!(table = %name, version, error = %e, "the version's stored statistics cannot be read; computing them again");
                Ok(None)
            }
        }
    }

    /// The statistics of the version `table` is: stored ones, else computed from its rows
    /// (once, however many callers ask at the same time) and stored.
    pub fn stats_of(&self, table: &TableHandle) -> Result<Arc<VersionStats>> {
        let (group, name, version) = (&table.group, &table.name, table.version);
        if let Some(stats) = self.stored_stats(group, name, version)? {
            return Ok(stats);
        }
        let key = (name.clone(), version);
        let flight = Arc::clone(
            guard(&self.stats_memory.flights)
                .entry(key.clone())
                .or_default(),
        );
        let computed = {
            let _only = guard(&flight);
            match self.stored_stats(group, name, version)? {
                Some(stats) => Ok(stats),
                None => self.compute_stats(table),
            }
        };
        guard(&self.stats_memory.flights).remove(&key);
        computed
    }

    fn compute_stats(&self, table: &TableHandle) -> Result<Arc<VersionStats>> {
        let started = std::time::Instant::now();
        let rows = typed::to_logical(&table.file.read_all(&table.file.all_columns())?)?;
        let stats = VersionStats::compute(std::slice::from_ref(&rows));
        tracing::info!(table = %table.name, version = table.version, rows = rows.num_rows(), millis = started.elapsed().as_millis() as u64, "computed the statistics of a version that had none");
        Ok(self.keep_stats(&table.group, &table.name, table.version, stats))
    }

    /// The statistics of an append to `current` of `rows` (logical types): the previous
    /// version's merged with the rows'. `None` when statistics are off or the previous
    /// version has none (the new version's are then computed when first asked for).
    pub(super) fn appended_stats(
        &self,
        current: &TableHandle,
        rows: &arrow::record_batch::RecordBatch,
    ) -> Option<VersionStats> {
        if !self.stats_enabled() {
            return None;
        }
        let previous = match self.stored_stats(&current.group, &current.name, current.version) {
            Ok(Some(previous)) => previous,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(table = %current.name, error = %e, "cannot read the previous version's statistics; the appended version's are computed when asked for");
                return None;
            }
        };
        Some(previous.merge(&VersionStats::compute(std::slice::from_ref(rows))))
    }

    /// Local kind: removes the statistics of `group/name` whose version `keep` refuses, and
    /// temporary files a crash left among them. Returns the files removed.
    pub(super) fn sweep_local_stats(
        &self,
        group: &GroupName,
        name: &TableName,
        keep: impl Fn(u64) -> bool,
    ) -> usize {
        let dir = self.layout.stats_dir(group, name);
        let mut removed = 0;
        let mut parsed = guard(&self.stats_memory.parsed);
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let gone = match Layout::stats_version(file) {
                Some(version) if !keep(version) => {
                    parsed.pop(&(name.clone(), version));
                    true
                }
                Some(_) => false,
                None => Layout::is_temp_file(file),
            };
            if gone && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        drop(parsed);
        if fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none()) {
            let _ = fs::remove_dir(&dir);
        }
        removed
    }

    /// S3 kind: removes the statistics objects of `name` whose version `keep` refuses.
    pub(super) fn sweep_remote_stats(
        &self,
        remote: &super::remote::Remote,
        name: &TableName,
        keep: impl Fn(u64) -> bool,
    ) -> Result<usize> {
        let removed = remote.sweep_stats(name, &keep)?;
        let mut parsed = guard(&self.stats_memory.parsed);
        let gone: Vec<_> = parsed
            .iter()
            .filter(|((n, v), _)| n == name && !keep(*v))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            parsed.pop(&key);
        }
        Ok(removed)
    }
}
