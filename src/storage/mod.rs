//! The Parquet tree: `features/<group>/<name>.parquet`, one table per feature view.
//!
//! [`Storage`] is the facade the rest of the crate uses; nothing outside this module touches
//! `std::fs` for table data, so another backend (an object store) can later sit behind it.
//! It keeps a catalog of open table snapshots ([`TableHandle`]) keyed by table name, since
//! names are unique across groups. Every operation here blocks: callers on an async runtime go
//! through `store`, which runs them on the blocking pool.
//!
//! Hazards: writes to one table are serialised by a per-name lock; readers never take it, they
//! clone an `Arc<TableHandle>` and read that snapshot to the end.

mod catalog;
mod convert;
mod downcast;
mod duplicates;
mod error;
mod fold;
#[cfg(test)]
mod fold_race;
pub mod history;
mod history_sweep;
mod layout;
mod meta;
pub mod object;
mod parts;
mod presence;
mod reader;
mod records;
mod remote;
mod rescan;
mod save;
mod settings;
mod source;
mod stats_store;
mod table;
mod table_lock;
mod typed;
mod versions;
mod writer;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

pub use catalog::{ColumnInfo, TableHandle, TableInfo, UnreadableTable};
pub use convert::{parse_timestamp_micros, records_to_batch};
pub use downcast::{DowncastPolicy, FloatDowncast, IntegerDowncast, downcast};
pub use duplicates::DuplicateTable;
pub use error::{Result, StorageError};
pub use fold::FoldOutcome;
pub use history::{
    ColumnRetype, HistoryConfig, HistorySweep, TableHistory, VersionOp, VersionRecord,
    VersionSelector,
};
pub use layout::{DEFAULT_GROUPS, Layout};
pub use meta::{ColumnMeta, LogicalType, TableMeta, dtype_name, micros_type, timestamp_type};
pub use presence::PRESENCE_FILE;
pub use records::{JsonScalar, RecordColumns};
pub use save::{AppendOutcome, Declaration, SaveOutcome};
pub use settings::{StorageBackend, StorageConfig};
pub use stats_store::StatsConfig;
pub use table::TableFile;
pub use typed::{json_columns_to_batch, logical_schema};
pub use versions::Clock;

use crate::model::TableName;
use writer::write_json;

/// Writes a JSON document atomically (temp file, fsync, rename), for metadata kept beside the
/// tables such as the registry.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_json(path, value)
}

/// The column inferred as entity key when none is declared.
pub const DEFAULT_ENTITY_KEY: &str = "entity_id";
/// The column inferred as timestamp field when none is declared.
pub const DEFAULT_TIMESTAMP_FIELD: &str = "event_timestamp";

/// The Parquet tree and its catalog of open tables.
#[derive(Debug)]
pub struct Storage {
    layout: Layout,
    config: StorageConfig,
    tables: RwLock<HashMap<TableName, Arc<TableHandle>>>,
    write_locks: Mutex<HashMap<TableName, Arc<Mutex<()>>>>,
    /// Table files that failed to open at their last load, by name; kept until the file
    /// loads, is replaced by a save, or disappears.
    unreadable: Mutex<HashMap<TableName, UnreadableTable>>,
    /// Names found in several groups at the last rescan, with the groups not served; kept so
    /// the duplicate is logged once (not on every rescan) and reported by `/health`.
    duplicates: Mutex<duplicates::Duplicates>,
    /// The bucket of the s3 kind; `None` for the local kind.
    remote: Option<remote::Remote>,
    /// Held while the tree is open, so no other process sweeps under this one's writes.
    _presence: Option<presence::Presence>,
    /// The clock history records instants with.
    clock: Mutex<versions::Clock>,
    /// Old versions recently opened, kept open for the next pinned read.
    pinned: Mutex<lru::LruCache<(TableName, u64), Arc<TableHandle>>>,
    /// Local history logs recently replayed, by path, with the size and modification time
    /// they had.
    replayed_logs: Mutex<lru::LruCache<std::path::PathBuf, versions::ReplayedLog>>,
    /// Versions' statistics recently read or written, and those being computed.
    stats_memory: stats_store::StatsMemory,
}

impl Storage {
    /// Opens (creating the skeleton of) the tree at `config.data_dir`, sweeps temporary files
    /// left by a crash (when no other process has the tree open), and loads every readable
    /// table. Unreadable tables are logged and
    /// skipped so one bad file cannot keep the server down.
    pub fn open(config: StorageConfig) -> Result<Self> {
        if config.backend == StorageBackend::S3 {
            let remote = remote::Remote::open(&config.s3)?;
            return Self::open_remote(config, remote);
        }
        let layout = Layout::new(&config.data_dir);
        for dir in layout.skeleton_dirs() {
            fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        }
        // Crash leftovers are only swept by a process alone on the tree: beside a running
        // server (the CLI), they may be the server's writes in progress.
        let (presence, alone) = presence::Presence::join(&layout.root().join("metadata"));
        let storage = Self::with_empty_catalog(layout, config, None, Some(presence));
        if alone {
            storage.sweep_temp_files();
        }
        let _ = storage.rescan();
        if alone {
            // Parts and base files no retained version reads (a crash between a write and
            // its cleanup, or versions past retention) go now.
            if let Err(e) = storage.sweep_history() {
                tracing::warn!(error = %e, "cannot sweep table history at start-up");
            }
        }
        Ok(storage)
    }

    fn with_empty_catalog(
        layout: Layout,
        config: StorageConfig,
        remote: Option<remote::Remote>,
        presence: Option<presence::Presence>,
    ) -> Self {
        Self {
            layout,
            config,
            tables: RwLock::new(HashMap::new()),
            write_locks: Mutex::new(HashMap::new()),
            unreadable: Mutex::new(HashMap::new()),
            duplicates: Mutex::new(HashMap::new()),
            remote,
            _presence: presence,
            clock: Mutex::new(versions::Clock::system()),
            pinned: versions::pinned_cache(),
            replayed_logs: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(versions::PINNED_VERSIONS)
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            stats_memory: stats_store::StatsMemory::default(),
        }
    }

    /// The s3 kind over an object store already built (an embedder's, or a test's with its
    /// own credentials) instead of the one `config.s3` describes.
    pub fn open_on(config: StorageConfig, tree: object::BlockingTree) -> Result<Self> {
        Self::open_remote(config, remote::Remote::over(tree))
    }

    /// The s3 kind: the tables are in the bucket; the data root keeps only this replica's
    /// caches. Nothing is swept here: other replicas may be mid-write (see `remote`).
    fn open_remote(config: StorageConfig, remote: remote::Remote) -> Result<Self> {
        let layout = Layout::new(&config.data_dir);
        let cache = layout.cache_dir();
        fs::create_dir_all(&cache).map_err(|e| StorageError::io(&cache, e))?;
        let storage = Self::with_empty_catalog(layout, config, Some(remote), None);
        let _ = storage.rescan();
        Ok(storage)
    }

    /// The object store holding the tables, registry and parts, for the s3 kind; `None` when
    /// they are local files. The registry and `/health` reach the store through it.
    pub fn object_tree(&self) -> Option<&object::BlockingTree> {
        self.remote.as_ref().map(remote::Remote::tree)
    }

    /// How often the s3 kind looks for other writers' commits; `None` for the local kind,
    /// whose tree is watched instead.
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        self.remote
            .as_ref()
            .map(|_| std::time::Duration::from_millis(self.config.poll_interval_ms))
    }

    /// The tree's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether a file can be created in the data root right now.
    pub fn is_writable(&self) -> bool {
        if let Some(remote) = &self.remote {
            return remote.tree().counters().outage.is_none();
        }
        let probe = Layout::temp_path_for(&self.layout.root().join("write-probe"));
        let ok = fs::File::create(&probe).is_ok();
        let _ = fs::remove_file(&probe);
        ok
    }

    fn write_lock(&self, name: &TableName) -> Arc<Mutex<()>> {
        let mut locks = self.write_locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(name.clone()).or_default())
    }
}

impl Storage {
    /// Runs a write until it is not beaten by another replica's commit (the s3 kind), a
    /// bounded number of times with a short random pause; the local kind runs it once.
    fn retrying<T>(&self, mut write: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match write() {
                Err(StorageError::CommitContended { .. })
                    if self.remote.is_some() && attempt + 1 < remote::COMMIT_ATTEMPTS =>
                {
                    attempt += 1;
                    let mut jitter = [0u8; 1];
                    let _ = getrandom::fill(&mut jitter);
                    std::thread::sleep(std::time::Duration::from_millis(
                        u64::from(jitter[0] % 20) + 2 * attempt as u64,
                    ));
                }
                other => return other,
            }
        }
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned catalog still holds consistent `Arc`s: every mutation is a single insert or
    // remove, so a panic elsewhere cannot leave it half-updated.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn guard<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update of the guarded map is one insert or remove: a poisoned one is consistent.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Formats a time as RFC 3339 in UTC with second precision.
pub fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}
