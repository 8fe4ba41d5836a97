//! The history operations of [`Storage`]: listing a table's versions, opening one, restoring
//! one, recording each write, and sweeping what retention no longer keeps. The format and the
//! rules are in [`super::history`]; this file applies them to the tree (local kind) and asks
//! `remote` for the s3 kind's entries.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::error::{Result, StorageError};
use super::history::{
    Compaction, Content, LocalLog, Replayed, TableHistory, VersionOp, VersionRecord,
    VersionSelector, replay,
};
use super::meta::{ColumnMeta, LogicalType, Sidecar};
use super::reader::ParquetFile;
use super::table::TableFile;
use super::{Storage, TableHandle, guard, layout::Layout};
use crate::model::{GroupName, TableName};

/// A replayed local log with the (size, modification time) its file had.
pub(super) type ReplayedLog = ((u64, SystemTime), Arc<Replayed>);

/// Pinned old versions kept open at once: each holds its files' descriptors (or footers).
pub(super) const PINNED_VERSIONS: usize = 64;

/// The clock history records instants with; tests inject their own to cross retention
/// boundaries without waiting days.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemTime::now))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// Milliseconds since the epoch, now.
    pub fn now_ms(&self) -> i64 {
        millis((self.0)())
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Milliseconds since the epoch of `time`.
pub(super) fn millis(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a write records in the table's history.
#[derive(Debug, Clone)]
pub(super) enum HistoryWrite {
    /// A new version.
    Version {
        /// What the write did.
        op: VersionOp,
        /// The token that wrote it.
        written_by: Option<String>,
        /// The version a restore copied.
        restored_from: Option<u64>,
    },
    /// A fold of `from_base` and its first `parts_folded` parts: same version, new layout.
    Compaction {
        /// The folded base's id (local) or key (s3).
        from_base: String,
        /// Parts folded with it.
        parts_folded: usize,
    },
}

/// The logical columns of a snapshot, as history records them.
pub(super) fn logical_columns(file: &TableFile) -> Vec<ColumnMeta> {
    file.schema()
        .fields()
        .iter()
        .map(|f| ColumnMeta {
            name: f.name().clone(),
            logical_type: LogicalType::from_arrow(f.data_type()).unwrap_or(LogicalType::String),
        })
        .collect()
}

impl Storage {
    /// Replaces the clock history records instants with (tests).
    pub fn set_clock(&self, clock: Clock) {
        *guard(&self.clock) = clock;
    }

    /// `[storage.history]`: the registry's history keeps what the tables' keeps.
    pub fn history_config(&self) -> super::HistoryConfig {
        self.config.history
    }

    /// Now, in milliseconds since the epoch, by the history clock.
    pub(super) fn now_ms(&self) -> i64 {
        guard(&self.clock).now_ms()
    }

    fn local_log(&self, group: &GroupName, name: &TableName) -> LocalLog {
        LocalLog::at(self.layout.history_log_path(group, name))
    }

    /// The group whose history holds `name`: the served table's, else the first group that
    /// has a log of it (a deleted table).
    fn history_group(&self, name: &TableName) -> Option<GroupName> {
        if let Some(handle) = self.peek(name) {
            return Some(handle.group.clone());
        }
        if let Some(remote) = &self.remote {
            return remote
                .known_head(name)
                .and_then(|head| head.group.parse().ok());
        }
        self.group_dirs()
            .into_iter()
            .chain(self.metadata_groups())
            .find(|g| self.local_log(g, name).exists())
    }

    fn metadata_groups(&self) -> Vec<GroupName> {
        fs::read_dir(self.layout.root().join("metadata"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect()
    }

    /// The versions of `name` (in `group`) and where each is read from.
    fn replayed(&self, group: &GroupName, name: &TableName) -> Result<Arc<Replayed>> {
        if let Some(remote) = &self.remote {
            return self.remote_replayed(remote, name).map(Arc::new);
        }
        let log = self.local_log(group, name);
        if let Some(current) = self.peek(name).filter(|h| &h.group == group) {
            let replayed = self.read_log(&log)?;
            if replayed.versions.last().map(|(r, _)| r.version) < Some(current.version) {
                // The write's line was lost (a crash, or the append failed): record the
                // content the table has now, so every served version is listed.
                self.reconcile_history(&current);
                return self.read_log(&log);
            }
            return Ok(replayed);
        }
        self.read_log(&log)
    }

    /// The replayed log, from memory while the file is unchanged (size and modification
    /// time): a pinned read by instant then costs a `stat`, not a parse of a week of lines.
    fn read_log(&self, log: &LocalLog) -> Result<Arc<Replayed>> {
        let stamp = fs::metadata(log.path())
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        let key = log.path().to_path_buf();
        if let Some(stamp) = stamp
            && let Some((seen, replayed)) = guard(&self.replayed_logs).get(&key)
            && *seen == stamp
        {
            return Ok(Arc::clone(replayed));
        }
        let replayed = Arc::new(replay(log.read()?));
        if let Some(stamp) = stamp {
            guard(&self.replayed_logs).put(key, (stamp, Arc::clone(&replayed)));
        }
        Ok(replayed)
    }

    /// The retained history of `name`, newest first. A deleted table's history stays
    /// readable (and restorable) while retention keeps it.
    pub fn history(&self, name: &TableName) -> Result<TableHistory> {
        let group = self
            .history_group(name)
            .ok_or_else(|| StorageError::TableNotFound {
                name: name.to_string(),
                hint: None,
            })?;
        let replayed = self.replayed(&group, name)?;
        let current = self.peek(name).map(|h| h.version);
        let mut versions: Vec<VersionRecord> =
            replayed.versions.iter().map(|(r, _)| r.clone()).collect();
        versions.reverse();
        Ok(TableHistory {
            history_bytes: self.table_history_bytes(&group, name),
            group,
            name: name.clone(),
            current,
            versions,
        })
    }

    /// The version of `name` that `at` selects, open for reading. The current version is the
    /// catalog's own snapshot; an older one is opened from its retained content (and kept
    /// open for the next read of it).
    pub fn table_at(&self, name: &TableName, at: VersionSelector) -> Result<Arc<TableHandle>> {
        let current = self.peek(name).or_else(|| self.get(name).ok());
        if let (VersionSelector::Current, Some(current)) = (at, &current) {
            return Ok(Arc::clone(current));
        }
        if let (VersionSelector::Number(n), Some(current)) = (at, &current)
            && n == current.version
        {
            return Ok(Arc::clone(current));
        }
        if let Some(handle) = self.pinned_handle(name, at) {
            return Ok(handle);
        }
        let group = self
            .history_group(name)
            .ok_or_else(|| StorageError::TableNotFound {
                name: name.to_string(),
                hint: None,
            })?;
        match self.open_selected(&group, name, at, current.clone()) {
            // A fold (or a sweep) between the replay and the open moved the version to
            // another file: the log says where now. A second miss (another fold in that
            // very instant, or a real expiry) answers 410.
            Err(StorageError::VersionExpired { .. }) => {
                self.open_selected(&group, name, at, current)
            }
            other => other,
        }
    }

    /// Opens the version `at` selects from the log as it is now.
    fn open_selected(
        &self,
        group: &GroupName,
        name: &TableName,
        at: VersionSelector,
        current: Option<Arc<TableHandle>>,
    ) -> Result<Arc<TableHandle>> {
        let group = group.clone();
        let replayed = self.replayed(&group, name)?;
        let index = select(&replayed, name, at)?;
        let (record, content) = &replayed.versions[index];
        if let Some(current) = current.filter(|c| c.version == record.version) {
            return Ok(current);
        }
        let Some(content) = content else {
            return Err(StorageError::VersionNotFound {
                name: name.to_string(),
                asked: at.describe(),
                available: format!("version {} is the table's deletion", record.version),
            });
        };
        let file = self
            .open_content(&group, name, content)
            .map_err(|e| match e {
                StorageError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    // The sweep removed it between the listing and the open.
                    StorageError::VersionExpired {
                        name: name.to_string(),
                        asked: at.describe(),
                        available: available(&replayed),
                    }
                }
                other => other,
            })?;
        let handle = Arc::new(TableHandle {
            group,
            name: name.clone(),
            file,
            version: record.version,
            entity_key: record.entity_key.clone(),
            timestamp_field: record.timestamp_field.clone(),
        });
        guard(&self.pinned).put((name.clone(), record.version), Arc::clone(&handle));
        Ok(handle)
    }

    fn pinned_handle(&self, name: &TableName, at: VersionSelector) -> Option<Arc<TableHandle>> {
        let VersionSelector::Number(n) = at else {
            return None;
        };
        guard(&self.pinned).get(&(name.clone(), n)).cloned()
    }

    /// Opens a retained content of the local kind, or of the s3 kind through `remote`.
    fn open_content(
        &self,
        group: &GroupName,
        name: &TableName,
        content: &Content,
    ) -> Result<TableFile> {
        if let Some(remote) = &self.remote {
            return self.open_remote_content(remote, name, content);
        }
        let base = ParquetFile::open(&self.layout.history_base_path(group, name, &content.base))?;
        if let Some(rows) = content.prefix_rows {
            return Ok(TableFile::prefix(base, rows));
        }
        let parts = (1..=content.parts)
            .map(|seq| ParquetFile::open(&self.layout.part_path(group, name, &content.base, seq)))
            .collect::<Result<Vec<_>>>()?;
        Ok(TableFile::from_segments(base, parts))
    }

    /// Writes the content of version `version` of `name` again as its newest version: a
    /// rollback that is itself a version, so it can be undone the same way. A deleted table
    /// is re-created in the group its history is in (`group` must name it).
    pub fn restore(
        &self,
        group: &GroupName,
        name: &TableName,
        version: u64,
        written_by: Option<String>,
    ) -> Result<super::SaveOutcome> {
        let old = self.table_at(name, VersionSelector::Number(version))?;
        if &old.group != group {
            return Err(StorageError::NameInOtherGroup {
                name: name.to_string(),
                existing_group: old.group.to_string(),
            });
        }
        let rows = super::typed::to_logical(&old.file.read_all(&old.file.all_columns())?)?;
        // The restored version's statistics are the new version's: the same rows.
        let stats = if self.stats_enabled() {
            self.stored_stats(&old.group, name, version)
                .ok()
                .flatten()
                .map(|s| s.as_ref().clone())
        } else {
            None
        };
        let declaration = super::Declaration {
            entity_key: (!old.entity_key.is_empty()).then(|| old.entity_key.clone()),
            timestamp_field: old.timestamp_field.clone(),
            created_timestamp_field: None,
            written_by: written_by.clone(),
        };
        let history = HistoryWrite::Version {
            op: VersionOp::Restore,
            written_by,
            restored_from: Some(version),
        };
        self.retrying(|| {
            let lock = self.write_lock(name);
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let _across = self.lock_across_processes(name);
            let existing = self.existing_for_write(group, name)?;
            self.save_locked_as(
                group,
                name,
                &rows,
                declaration.clone(),
                existing,
                history.clone(),
                stats.clone(),
            )
        })
    }

    /// Records the version `handle` just became (local kind; the s3 kind's entry is its
    /// record). A failure is logged, not returned: the write itself is durable, and the next
    /// listing records the missing version from the table (see `replayed`).
    pub(super) fn record_version(
        &self,
        handle: &TableHandle,
        previous: Option<&TableHandle>,
        write: &HistoryWrite,
        rows_written: u64,
        bytes_written: u64,
    ) {
        if self.remote.is_some() {
            return;
        }
        let log = self.local_log(&handle.group, &handle.name);
        let outcome = match write {
            HistoryWrite::Version {
                op,
                written_by,
                restored_from,
            } => {
                let record = VersionRecord {
                    version: handle.version,
                    op: *op,
                    became_current_ms: self.now_ms(),
                    rows: handle.file.row_count(),
                    rows_written,
                    bytes_written,
                    columns: logical_columns(&handle.file),
                    columns_added: Vec::new(),
                    columns_removed: Vec::new(),
                    columns_retyped: Vec::new(),
                    written_by: written_by.clone(),
                    restored_from: *restored_from,
                    entity_key: handle.entity_key.clone(),
                    timestamp_field: handle.timestamp_field.clone(),
                }
                .with_changes_from(
                    &previous
                        .map(|p| logical_columns(&p.file))
                        .unwrap_or_default(),
                );
                log.append_version(&record, Some(&local_content(&handle.file)))
            }
            HistoryWrite::Compaction {
                from_base,
                parts_folded,
            } => log.append_compaction(&Compaction {
                from_base: from_base.clone(),
                parts_folded: *parts_folded,
                to_base: handle.file.base().base_id(),
            }),
        };
        match outcome {
            Err(e) => {
                tracing::warn!(table = %handle.name, error = %e, "could not record the write in the table's history; it is recorded from the table at the next listing");
            }
            Ok(()) => {
                if let HistoryWrite::Compaction { from_base, .. } = write {
                    let into = handle.file.base().base_id();
                    self.drop_folded_content(&handle.group, &handle.name, from_base, &into);
                }
            }
        }
        guard(&self.pinned).pop(&(handle.name.clone(), handle.version));
    }

    /// Records the deletion of `handle`'s table as version `version` (local kind).
    pub(super) fn record_delete(
        &self,
        handle: &TableHandle,
        version: u64,
        written_by: Option<String>,
    ) {
        let record = VersionRecord {
            version,
            op: VersionOp::Delete,
            became_current_ms: self.now_ms(),
            rows: 0,
            rows_written: 0,
            bytes_written: 0,
            columns: Vec::new(),
            columns_added: Vec::new(),
            columns_removed: logical_columns(&handle.file)
                .into_iter()
                .map(|c| c.name)
                .collect(),
            columns_retyped: Vec::new(),
            written_by,
            restored_from: None,
            entity_key: handle.entity_key.clone(),
            timestamp_field: handle.timestamp_field.clone(),
        };
        if let Err(e) = self
            .local_log(&handle.group, &handle.name)
            .append_version(&record, None)
        {
            tracing::warn!(table = %handle.name, error = %e, "could not record the deletion in the table's history");
        }
    }

    /// Gives the base file at `path` (just renamed into place) its history name, so it stays
    /// readable after a replace. A hard link: no byte is copied.
    pub(super) fn keep_base_in_history(
        &self,
        group: &GroupName,
        name: &TableName,
        path: &Path,
        base_id: &str,
    ) -> Result<()> {
        let target = self.layout.history_base_path(group, name, base_id);
        if let (Ok(a), Ok(b)) = (fs::metadata(path), fs::metadata(&target)) {
            use std::os::unix::fs::MetadataExt;
            if a.ino() == b.ino() && a.dev() == b.dev() {
                return Ok(());
            }
        }
        let dir = self.layout.history_dir(group, name);
        self.create_dirs_durably(&dir)?;
        let temp = Layout::temp_path_for(&target);
        fs::hard_link(path, &temp).map_err(|e| StorageError::io(&temp, e))?;
        fs::rename(&temp, &target).map_err(|e| StorageError::io(&target, e))?;
        super::writer::sync_dir(&dir)
    }

    /// Makes the log list `handle`'s content as its version when it does not (a table found
    /// on disk, written by another tool, or whose write's line was lost), and gives its base
    /// its history name. Local kind.
    pub(super) fn reconcile_history(&self, handle: &TableHandle) {
        if self.remote.is_some() {
            return;
        }
        let (group, name) = (&handle.group, &handle.name);
        let log = self.local_log(group, name);
        let replayed = match log.read() {
            Ok(steps) => replay(steps),
            Err(e) => {
                tracing::warn!(table = %name, error = %e, "cannot read the table's history");
                return;
            }
        };
        // The base gets its history name even when the log is up to date: a fold killed
        // between its rename and its link keeps the version (so the log has it), and later
        // appends to the new base must still read after a replace. Two stats when linked.
        let base_id = handle.file.base().base_id();
        if let Err(e) = self.keep_base_in_history(group, name, handle.file.path(), &base_id) {
            tracing::warn!(table = %name, error = %e, "cannot keep the table's file in its history");
            return;
        }
        let last = replayed.versions.last();
        if last.is_some_and(|(r, _)| r.version >= handle.version) {
            return;
        }
        let op = match (handle.file.meta(), last) {
            (None, _) => VersionOp::External,
            (Some(_), None) => VersionOp::Create,
            (Some(_), Some((_, Some(c)))) if c.base == base_id => VersionOp::Append,
            (Some(_), Some(_)) => VersionOp::Replace,
        };
        let previous: Vec<ColumnMeta> = last.map(|(r, _)| r.columns.clone()).unwrap_or_default();
        let record = VersionRecord {
            version: handle.version,
            op,
            became_current_ms: millis(handle.file.modified()),
            rows: handle.file.row_count(),
            rows_written: handle.file.row_count()
                - last.map_or(0, |(r, _)| r.rows).min(handle.file.row_count()),
            bytes_written: handle.file.file_size(),
            columns: logical_columns(&handle.file),
            columns_added: Vec::new(),
            columns_removed: Vec::new(),
            columns_retyped: Vec::new(),
            written_by: None,
            restored_from: None,
            entity_key: handle.entity_key.clone(),
            timestamp_field: handle.timestamp_field.clone(),
        }
        .with_changes_from(&previous);
        if let Err(e) = log.append_version(&record, Some(&local_content(&handle.file))) {
            tracing::warn!(table = %name, error = %e, "cannot record the table's version in its history");
        }
    }
}

/// Where the local kind reads `file` from later: its base's history name and its parts.
fn local_content(file: &TableFile) -> Content {
    Content {
        base: file.base().base_id(),
        parts: file.part_count(),
        prefix_rows: None,
    }
}

/// The retained versions, as an error lists them.
pub(super) fn available(replayed: &Replayed) -> String {
    let live: Vec<u64> = replayed
        .versions
        .iter()
        .filter(|(_, c)| c.is_some())
        .map(|(r, _)| r.version)
        .collect();
    match (live.first(), live.last()) {
        (Some(first), Some(last)) if first == last => {
            format!("the only retained version is {first}")
        }
        (Some(first), Some(last)) => format!(
            "retained versions: {} between {first} and {last} (GET .../versions lists them)",
            live.len()
        ),
        _ => "no version is retained".to_owned(),
    }
}

/// The index of the version `at` selects, or the 404 / 410 error that says why there is none.
fn select(replayed: &Replayed, name: &TableName, at: VersionSelector) -> Result<usize> {
    let versions = &replayed.versions;
    let not_found = |why: String| StorageError::VersionNotFound {
        name: name.to_string(),
        asked: at.describe(),
        available: why,
    };
    let expired = || StorageError::VersionExpired {
        name: name.to_string(),
        asked: at.describe(),
        available: available(replayed),
    };
    let (Some(oldest), Some(newest)) = (versions.first(), versions.last()) else {
        return Err(not_found("the table has no recorded version".into()));
    };
    // A history that starts with its table's creation lost nothing before it.
    let complete =
        matches!(oldest.0.op, VersionOp::Create | VersionOp::External) && oldest.0.version == 1;
    match at {
        VersionSelector::Current => Ok(versions.len() - 1),
        VersionSelector::Number(n) => {
            if let Some(i) = versions.iter().position(|(r, _)| r.version == n) {
                return Ok(i);
            }
            if n > newest.0.version || n == 0 || complete || n > oldest.0.version {
                return Err(not_found(available(replayed)));
            }
            Err(expired())
        }
        VersionSelector::AsOf(instant) => {
            let ms = instant.timestamp_millis();
            match versions
                .iter()
                .rposition(|(r, _)| r.became_current_ms <= ms)
            {
                Some(i) if versions[i].1.is_none() => Err(not_found(format!(
                    "the table was deleted then (version {})",
                    versions[i].0.version
                ))),
                Some(i) => Ok(i),
                None if complete => Err(not_found(format!(
                    "the table was created at {}",
                    oldest
                        .0
                        .became_current()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ))),
                None => Err(expired()),
            }
        }
    }
}

/// A `Mutex` around the pinned versions' cache.
pub(super) fn pinned_cache() -> Mutex<lru::LruCache<(TableName, u64), Arc<TableHandle>>> {
    Mutex::new(lru::LruCache::new(
        std::num::NonZeroUsize::new(PINNED_VERSIONS).unwrap_or(std::num::NonZeroUsize::MIN),
    ))
}

impl Sidecar {
    /// The tombstone of a deleted table whose deletion is version `version`.
    pub(super) fn deleted_at(version: u64) -> Self {
        Sidecar {
            version,
            deleted: true,
            row_count: 0,
            file_size_bytes: 0,
            table: None,
            fingerprint: None,
        }
    }
}
