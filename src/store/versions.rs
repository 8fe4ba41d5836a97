//! Table history through the facade: the versions of a table, reads pinned to a version or
//! an instant, restores, diffs between two versions, the space history takes, and the
//! background sweep that gives it back.
//!
//! Every pinned read resolves its version first (`Storage::table_at`) and then reads it like
//! the current one, through the same cache: keys carry the version and the snapshot id, so a
//! pinned page can never be served the current version's rows, nor the other way round. A
//! restore is a write like a save: it goes through `registration::after_write` (caches, the
//! table's view) and is announced on the change bus like one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::diff::{KeyChanges, key_changes};
use super::registration::after_write;
use super::{FeatureStore, Page, PageRequest, Result, SaveOutcome, read_page, reload_registry};
use crate::model::{GroupName, TableName};
use crate::poll::PollGuard;
use crate::registry::{SyncOptions, ViewSync};
use crate::storage::history::column_changes;
use crate::storage::{
    ColumnMeta, ColumnRetype, HistorySweep, LogicalType, Storage, StorageError, TableHandle,
    TableInfo, VersionOp, VersionRecord, VersionSelector,
};

/// How often the server sweeps table history past retention (`[storage.history]`).
pub const HISTORY_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Which version of each table a read over several tables uses: a table named in `tables`
/// reads that version, every other table the version current at `as_of`, or the current one.
#[derive(Debug, Clone, Default)]
pub struct VersionPins {
    /// Table → version number.
    pub tables: BTreeMap<TableName, u64>,
    /// The instant whose versions the tables not in `tables` are read at.
    pub as_of: Option<DateTime<Utc>>,
}

impl VersionPins {
    /// The version `name` is read at.
    pub fn selector(&self, name: &TableName) -> VersionSelector {
        match (self.tables.get(name), self.as_of) {
            (Some(&n), _) => VersionSelector::Number(n),
            (None, Some(at)) => VersionSelector::AsOf(at),
            (None, None) => VersionSelector::Current,
        }
    }
}

/// A page of a table's versions, newest first.
#[derive(Debug, Clone)]
pub struct VersionPage {
    /// The table's group.
    pub group: GroupName,
    /// The table.
    pub name: TableName,
    /// The current version; `None` while the table is deleted.
    pub current_version: Option<u64>,
    /// Bytes kept only for versions other than the current one.
    pub history_bytes: u64,
    /// Versions retained in all.
    pub total: u64,
    /// The versions of this page, newest first.
    pub versions: Vec<VersionRecord>,
}

/// Storage facts of one version of a table, with the space its history takes.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// The version's facts (its `version` is the one read).
    pub info: TableInfo,
    /// Bytes kept only for the table's versions other than the current one.
    pub history_bytes: u64,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The write: its `version` is the new version.
    pub table: SaveOutcome,
    /// The version whose content the new version has.
    pub restored_from: u64,
    /// What the restore did to the table's feature view.
    pub registry: ViewSync,
}

/// What changed between two versions of a table.
#[derive(Debug, Clone)]
pub struct TableDiff {
    /// The older side.
    pub from: u64,
    /// The newer side.
    pub to: u64,
    /// Rows at `from`.
    pub from_rows: u64,
    /// Rows at `to`.
    pub to_rows: u64,
    /// Columns `to` has that `from` has not.
    pub columns_added: Vec<String>,
    /// Columns `from` has that `to` has not.
    pub columns_removed: Vec<String>,
    /// Columns whose logical type changed.
    pub columns_retyped: Vec<ColumnRetype>,
    /// The entity key the keys were matched on (`to`'s); empty when the table has none.
    pub entity_key: Vec<String>,
    /// Keys added, removed, changed and unchanged; `None` without an entity key (or when a
    /// key column is missing from `from`).
    pub keys: Option<KeyChanges>,
}

/// History space, per table and in all.
#[derive(Debug, Clone, Default)]
pub struct HistoryUsage {
    /// Bytes kept for history across every table, deleted ones included.
    pub total_bytes: u64,
    /// (group, table, bytes) for each table in the catalog.
    pub tables: Vec<(String, String, u64)>,
}

impl FeatureStore {
    /// The retained versions of `group/name`, newest first, `limit` of them from `offset`.
    /// A deleted table's versions stay listed while retention keeps them: that is how a
    /// caller finds the version to restore.
    pub async fn versions(
        &self,
        group: GroupName,
        name: TableName,
        offset: u64,
        limit: u64,
    ) -> Result<VersionPage> {
        self.blocking(move |s, _| {
            check_group(s, &group, &name)?;
            let history = s.history(&name)?;
            if history.group != group {
                return Err(other_group(&name, &history.group).into());
            }
            let total = history.versions.len() as u64;
            let versions = history
                .versions
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .collect();
            Ok(VersionPage {
                group,
                name,
                current_version: history.current,
                history_bytes: history.history_bytes,
                total,
                versions,
            })
        })
        .await
    }

    /// A page of `group/name` at the version `at` selects (see [`FeatureStore::page`] for the
    /// current one, which it is for [`VersionSelector::Current`]).
    pub async fn page_at(
        &self,
        group: GroupName,
        name: TableName,
        request: PageRequest,
        at: VersionSelector,
    ) -> Result<Page> {
        if at == VersionSelector::Current {
            return self.page(group, name, request).await;
        }
        self.blocking(move |s, cache| {
            let table = resolve(s, &group, &name, at)?;
            read_page(cache, &table, &request, false)
        })
        .await
    }

    /// Storage facts of `group/name` at the version `at` selects, with its history's size.
    pub async fn info_at(
        &self,
        group: GroupName,
        name: TableName,
        at: VersionSelector,
    ) -> Result<VersionInfo> {
        self.blocking(move |s, _| {
            let table = resolve(s, &group, &name, at)?;
            Ok(VersionInfo {
                info: s.info(&table),
                history_bytes: s.table_history_bytes(&group, &name),
            })
        })
        .await
    }

    /// Writes the content of version `version` of `group/name` again, as its newest version
    /// (a rollback that is itself undoable: restore the version before it). A deleted table
    /// is re-created. Caches, the table's view and the other replicas learn of it as of a
    /// save.
    pub async fn restore(
        &self,
        group: GroupName,
        name: TableName,
        version: u64,
        written_by: Option<String>,
    ) -> Result<Restored> {
        let registry = Arc::clone(&self.registry);
        let written = (group.to_string(), name.to_string());
        self.blocking(move |s, c| {
            // The version's own 404 / 410, and the group's, before anything is written.
            resolve(s, &group, &name, VersionSelector::Number(version))?;
            reload_registry(&registry);
            let outcome = s.restore(&group, &name, version, written_by);
            // Registers a view when the table has none, as a save through the API does.
            let options = SyncOptions {
                register: true,
                ..SyncOptions::default()
            };
            let (table, view) = after_write(s, c, &registry, &group, &name, outcome, &options)?;
            Ok(Restored {
                table,
                restored_from: version,
                registry: view,
            })
        })
        .await
        .inspect(|_| self.announce_table(Some(&written.0), &written.1))
    }

    /// What changed in `group/name` from version `from` to version `to`. `to` defaults to
    /// the current version (the newest readable one of a deleted table), `from` to the
    /// readable version retained just before `to`.
    pub async fn diff(
        &self,
        group: GroupName,
        name: TableName,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Result<TableDiff> {
        self.blocking(move |s, _| {
            let (from, to) = match compared_versions(s, &group, &name, from, to)? {
                (Some(from), to) => (from, to),
                (None, to) => {
                    return Err(
                        no_version(&name, &format!("a retained version before {to}")).into(),
                    );
                }
            };
            let older = resolve(s, &group, &name, VersionSelector::Number(from))?;
            let newer = resolve(s, &group, &name, VersionSelector::Number(to))?;
            let before = older.file.read_all(&older.file.all_columns())?;
            let after = newer.file.read_all(&newer.file.all_columns())?;
            let (columns_added, columns_removed, columns_retyped) =
                column_changes(&columns(&older), &columns(&newer));
            let keys =
                key_changes(&before, &after, &newer.entity_key).map_err(StorageError::from)?;
            Ok(TableDiff {
                from,
                to,
                from_rows: older.file.row_count(),
                to_rows: newer.file.row_count(),
                columns_added,
                columns_removed,
                columns_retyped,
                entity_key: newer.entity_key.clone(),
                keys,
            })
        })
        .await
    }

    /// Bytes kept for history: per table in the catalog, and in all (deleted tables' history
    /// included). On the local kind, a directory listing per table.
    pub async fn history_usage(&self) -> Result<HistoryUsage> {
        self.blocking(|s, _| {
            let tables = s
                .list()
                .iter()
                .map(|t| {
                    let bytes = s.table_history_bytes(&t.group, &t.name);
                    (t.group.to_string(), t.name.to_string(), bytes)
                })
                .collect();
            Ok(HistoryUsage {
                total_bytes: s.history_bytes(),
                tables,
            })
        })
        .await
    }

    /// Sweeps every table's history past retention now (the background sweep's round).
    pub async fn sweep_history(&self) -> Result<HistorySweep> {
        let histories = Arc::clone(&self.histories);
        self.blocking(move |s, _| {
            let swept = s.sweep_history()?;
            super::history::prune(s, &histories);
            Ok(swept)
        })
        .await
    }

    /// Starts sweeping table history every `every` on a thread of its own (the server uses
    /// [`HISTORY_SWEEP_INTERVAL`]); `None` when the thread cannot start (logged: history then
    /// waits for the next start-up sweep). Dropping the guard stops it.
    pub fn start_history_sweep(&self, every: Duration) -> Option<PollGuard> {
        let storage = Arc::clone(&self.storage);
        let histories = Arc::clone(&self.histories);
        let round = move || match storage.sweep_history() {
            Ok(swept) => {
                // Versions the sweep forgot take their kept histories with them.
                super::history::prune(&storage, &histories);
                tracing::debug!(
                    versions_expired = swept.versions_expired,
                    files_deleted = swept.files_deleted,
                    bytes_freed = swept.bytes_freed,
                    "history sweep round done"
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "the history sweep failed; it is retried at the next round")
            }
        };
        match crate::poll::poll("history-sweep", every, round) {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the history sweep; history past retention is swept at the next start-up");
                None
            }
        }
    }
}

/// The two versions a comparison of `group/name` reads: `to` defaults to the current
/// version (the newest readable one of a deleted table), `from` to the readable version
/// retained just before `to` (`None` when there is none).
pub(super) fn compared_versions(
    s: &Storage,
    group: &GroupName,
    name: &TableName,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<(Option<u64>, u64)> {
    check_group(s, group, name)?;
    let history = s.history(name)?;
    if &history.group != group {
        return Err(other_group(name, &history.group).into());
    }
    // Newest first; a deletion has no content to compare.
    let readable: Vec<u64> = history
        .versions
        .iter()
        .filter(|r| r.op != VersionOp::Delete)
        .map(|r| r.version)
        .collect();
    let Some(to) = to.or(history.current).or(readable.first().copied()) else {
        return Err(no_version(name, "any readable version").into());
    };
    let from = from.or_else(|| readable.iter().copied().find(|v| *v < to));
    Ok((from, to))
}

/// The version of `group/name` that `at` selects. The group is checked the way reads of the
/// current version check it (a table in another group is not found, with a hint; a duplicate
/// is a conflict), and for a deleted table against the group its history is in.
pub(super) fn resolve(
    s: &Storage,
    group: &GroupName,
    name: &TableName,
    at: VersionSelector,
) -> Result<Arc<TableHandle>, StorageError> {
    match s.get_in_group(group, name) {
        Ok(current) if at == VersionSelector::Current => return Ok(current),
        Ok(_) => {}
        // Deleted, or never written: its history decides.
        Err(StorageError::TableNotFound { .. }) if at != VersionSelector::Current => {}
        Err(e) => return Err(e),
    }
    let table = s.table_at(name, at)?;
    if &table.group != group {
        return Err(other_group(name, &table.group));
    }
    Ok(table)
}

/// The errors of [`Storage::get_in_group`] other than "not found" (a duplicate), before a
/// history lookup that only knows names.
fn check_group(s: &Storage, group: &GroupName, name: &TableName) -> Result<(), StorageError> {
    match s.get_in_group(group, name) {
        Ok(_) | Err(StorageError::TableNotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn other_group(name: &TableName, group: &GroupName) -> StorageError {
    StorageError::TableNotFound {
        name: name.to_string(),
        hint: Some(format!("it is in group {:?}", group.as_str())),
    }
}

fn no_version(name: &TableName, asked: &str) -> StorageError {
    StorageError::VersionNotFound {
        name: name.to_string(),
        asked: asked.to_owned(),
        available: "GET .../versions lists the retained versions".to_owned(),
    }
}

/// The logical columns of a version, as its history records them.
fn columns(table: &TableHandle) -> Vec<ColumnMeta> {
    table
        .file
        .schema()
        .fields()
        .iter()
        .map(|f| ColumnMeta {
            name: f.name().clone(),
            // A type featurestore does not write (another tool's file) is compared as text.
            logical_type: LogicalType::from_arrow(f.data_type()).unwrap_or(LogicalType::String),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_version_wins_over_as_of_which_wins_over_current() -> Result<(), String> {
        let name = |n: &str| n.parse::<TableName>().map_err(|e| e.to_string());
        let at = DateTime::from_timestamp(1_700_000_000, 0).ok_or("an instant")?;
        let pins = VersionPins {
            tables: BTreeMap::from([(name("a")?, 3)]),
            as_of: Some(at),
        };
        assert_eq!(pins.selector(&name("a")?), VersionSelector::Number(3));
        assert_eq!(pins.selector(&name("b")?), VersionSelector::AsOf(at));
        assert_eq!(
            VersionPins::default().selector(&name("b")?),
            VersionSelector::Current
        );
        Ok(())
    }
}
