//! Table history: every write that changes a table records a version, and any version still
//! retained can be opened again, so training data is reproducible and a bad write can be
//! undone (issue [4/6]).
//!
//! A version is a *content*: a base file, the first `k` parts appended to it, or a prefix of
//! a base file. Nothing is copied to keep one: a replaced base file stays where it is (the
//! local kind hard-links every base into `_history/` when it is written; the s3 kind never
//! rewrites an object), appended parts stay in their folder, and a fold that writes the base
//! and its parts as one new file re-points the versions it folded to prefixes of that file,
//! whose rows are the old base's followed by each part's in append order. So the history of a
//! table fed by pushes and folded in the background costs the current file and nothing more;
//! only a replace keeps a second copy, for as long as retention says.
//!
//! The log of versions is `metadata/<group>/<name>.history.jsonl` on the local kind (one
//! line per write, appended and synced before the write is acknowledged) and the commit
//! entries on the s3 kind. [`replay`] turns either into the list of versions and where each
//! is read from; [`retention`] decides which ones the sweep keeps.

mod local;
mod replay;
mod retention;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::meta::{ColumnMeta, LogicalType};
use crate::model::{GroupName, TableName};

pub(super) use local::LocalLog;
pub(super) use replay::{Compaction, Content, Replayed, Step, replay};
pub use retention::HistoryConfig;

/// What a write did to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionOp {
    /// The first content of a table (or the first after a delete).
    Create,
    /// A new content replaced the table.
    Replace,
    /// Rows were appended (a push to the offline store).
    Append,
    /// The content of an earlier version was written again as a new version.
    Restore,
    /// The table was deleted; the version has no content.
    Delete,
    /// Another tool wrote the file (or featurestore found a table it had not written).
    External,
}

/// A column whose type changed between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRetype {
    /// The column.
    pub name: String,
    /// Its type before.
    pub from: LogicalType,
    /// Its type after.
    pub to: LogicalType,
}

/// One version of a table, as its history lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The version number; strictly increasing along a table's history.
    pub version: u64,
    /// The write that made it.
    pub op: VersionOp,
    /// When it became the current version, milliseconds since the epoch.
    pub became_current_ms: i64,
    /// Rows in the table at this version.
    pub rows: u64,
    /// Rows the write added (all of them for a create, replace or restore).
    pub rows_written: u64,
    /// Bytes the write stored (the part, or the new base file).
    pub bytes_written: u64,
    /// The columns and their logical types at this version.
    pub columns: Vec<ColumnMeta>,
    /// Columns this version has that the previous one did not.
    #[serde(default)]
    pub columns_added: Vec<String>,
    /// Columns the previous version had that this one does not.
    #[serde(default)]
    pub columns_removed: Vec<String>,
    /// Columns whose logical type changed.
    #[serde(default)]
    pub columns_retyped: Vec<ColumnRetype>,
    /// The token that wrote it, when auth is on.
    #[serde(default)]
    pub written_by: Option<String>,
    /// The version a restore copied.
    #[serde(default)]
    pub restored_from: Option<u64>,
    /// Entity key columns in effect.
    #[serde(default)]
    pub entity_key: Vec<String>,
    /// Timestamp field in effect.
    #[serde(default)]
    pub timestamp_field: Option<String>,
}

impl VersionRecord {
    /// When it became current.
    pub fn became_current(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.became_current_ms).unwrap_or_default()
    }

    /// Fills `columns_added`, `columns_removed` and `columns_retyped` against `previous`'s
    /// columns (none before a create).
    pub(super) fn with_changes_from(mut self, previous: &[ColumnMeta]) -> Self {
        let (added, removed, retyped) = column_changes(previous, &self.columns);
        self.columns_added = added;
        self.columns_removed = removed;
        self.columns_retyped = retyped;
        self
    }
}

/// The columns added, removed and retyped from `before` to `after`.
pub fn column_changes(
    before: &[ColumnMeta],
    after: &[ColumnMeta],
) -> (Vec<String>, Vec<String>, Vec<ColumnRetype>) {
    let find = |cols: &[ColumnMeta], name: &str| -> Option<LogicalType> {
        cols.iter().find(|c| c.name == name).map(|c| c.logical_type)
    };
    let added = after
        .iter()
        .filter(|c| find(before, &c.name).is_none())
        .map(|c| c.name.clone())
        .collect();
    let removed = before
        .iter()
        .filter(|c| find(after, &c.name).is_none())
        .map(|c| c.name.clone())
        .collect();
    let retyped = after
        .iter()
        .filter_map(|c| {
            let from = find(before, &c.name)?;
            (from != c.logical_type).then(|| ColumnRetype {
                name: c.name.clone(),
                from,
                to: c.logical_type,
            })
        })
        .collect();
    (added, removed, retyped)
}

/// Which version of a table a read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The current one.
    Current,
    /// Version `n`.
    Number(u64),
    /// The one that was current at that instant.
    AsOf(DateTime<Utc>),
}

impl VersionSelector {
    /// How an error names what was asked for.
    pub fn describe(&self) -> String {
        match self {
            VersionSelector::Current => "the current version".to_owned(),
            VersionSelector::Number(n) => format!("version {n}"),
            VersionSelector::AsOf(at) => format!(
                "the version current at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        }
    }
}

/// A table's retained history.
#[derive(Debug, Clone)]
pub struct TableHistory {
    /// Its group (of the newest version).
    pub group: GroupName,
    /// Its name.
    pub name: TableName,
    /// The current version; `None` when the table is deleted.
    pub current: Option<u64>,
    /// The retained versions, newest first.
    pub versions: Vec<VersionRecord>,
    /// Bytes kept only for versions other than the current one.
    pub history_bytes: u64,
}

/// What a history sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistorySweep {
    /// Versions that fell out of retention.
    pub versions_expired: usize,
    /// Files or objects deleted.
    pub files_deleted: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
}

impl HistorySweep {
    /// Adds one table's sweep to a round's total, or logs why that table was skipped (it is
    /// swept again next round).
    pub(in crate::storage) fn absorb(&mut self, name: &TableName, table: super::Result<Self>) {
        match table {
            Ok(swept) => {
                self.versions_expired += swept.versions_expired;
                self.files_deleted += swept.files_deleted;
                self.bytes_freed += swept.bytes_freed;
            }
            Err(e) => {
                tracing::warn!(table = %name, error = %e, "cannot sweep the table's history this round")
            }
        }
    }

    /// Logs a round that removed anything; `place` says where ("the tree", "the bucket").
    pub(in crate::storage) fn log_round(&self, place: &str) {
        if self.files_deleted > 0 || self.versions_expired > 0 {
            tracing::info!(
                versions = self.versions_expired,
                files = self.files_deleted,
                bytes = self.bytes_freed,
                place,
                "swept table history past retention"
            );
        }
    }
}
