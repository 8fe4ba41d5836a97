//! The catalog of open table snapshots: lookups by name, discovery of tables not yet loaded,
//! and the version each loaded file gets.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::error::{Result, StorageError};
use super::meta::{Sidecar, TableMeta, dtype_name};
use super::save::default_if_present;
use super::table::TableFile;
use super::writer::write_json;
use super::{
    DEFAULT_ENTITY_KEY, DEFAULT_TIMESTAMP_FIELD, Storage, guard, read_lock, reader, rfc3339,
    write_lock,
};
use crate::model::{GroupName, TableName, infer_group};

/// One open version of a table, with what featurestore knows about it.
#[derive(Debug)]
pub struct TableHandle {
    /// Its group.
    pub group: GroupName,
    /// Its name.
    pub name: TableName,
    /// The open file snapshot.
    pub file: TableFile,
    /// Generation number (bumped on every write).
    pub version: u64,
    /// Entity key columns (empty when none).
    pub entity_key: Vec<String>,
    /// Event timestamp column, if any.
    pub timestamp_field: Option<String>,
}

/// Storage facts of one column.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Type values are served as.
    pub logical_type: String,
    /// Type in the file.
    pub stored_type: String,
}

/// Storage facts of one table, from its footer and sidecar.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Group.
    pub group: String,
    /// Name.
    pub name: String,
    /// File relative to the data root.
    pub relative_path: String,
    /// File size in bytes.
    pub file_size_bytes: u64,
    /// Rows.
    pub row_count: u64,
    /// Row groups.
    pub row_group_count: usize,
    /// Per-column types.
    pub columns: Vec<ColumnInfo>,
    /// In-memory Arrow size of the logical data.
    pub arrow_bytes: u64,
    /// Modification time, RFC 3339.
    pub modified: String,
    /// Version.
    pub version: u64,
    /// Entity key columns.
    pub entity_key: Vec<String>,
    /// Timestamp field.
    pub timestamp_field: Option<String>,
}

/// A table file on disk that cannot be opened (damaged, truncated, not Parquet), as `/health`
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableTable {
    /// Its group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// The file, relative to the data root.
    pub file: String,
    /// Why it cannot be opened.
    pub error: String,
}

impl Storage {
    /// Every table in the catalog, sorted by group then name.
    pub fn list(&self) -> Vec<Arc<TableHandle>> {
        let mut all: Vec<_> = read_lock(&self.tables).values().cloned().collect();
        all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        all
    }

    /// Number of tables in the catalog.
    pub fn table_count(&self) -> usize {
        read_lock(&self.tables).len()
    }

    /// Table files that could not be opened when last loaded, by group then name. Their
    /// reads fail with an error naming the file (or, when an earlier version was open,
    /// keep serving that snapshot); every other table is unaffected. A file changed within
    /// the last few seconds is left out: another tool may still be copying it in, and a
    /// half-copied file is expected to be unreadable until the copy completes.
    pub fn unreadable(&self) -> Vec<UnreadableTable> {
        let settled = |t: &UnreadableTable| {
            fs::metadata(self.layout.root().join(&t.file))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_none_or(|age| age > reader::REWRITE_GRACE)
        };
        let mut all: Vec<UnreadableTable> = guard(&self.unreadable)
            .values()
            .filter(|t| settled(t))
            .cloned()
            .collect();
        all.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        all
    }

    pub(super) fn mark_unreadable(
        &self,
        group: &GroupName,
        name: &TableName,
        error: &StorageError,
    ) {
        guard(&self.unreadable).insert(
            name.clone(),
            UnreadableTable {
                group: group.to_string(),
                name: name.to_string(),
                file: self.layout.relative_table_path(group, name),
                error: error.to_string(),
            },
        );
    }

    pub(super) fn mark_readable(&self, name: &TableName) {
        guard(&self.unreadable).remove(name);
    }

    /// The table named `name` if the catalog already holds it; never touches the disk, so it
    /// is safe on the event loop.
    pub fn peek(&self, name: &TableName) -> Option<Arc<TableHandle>> {
        read_lock(&self.tables).get(name).cloned()
    }

    /// The table named `name`, wherever it is.
    pub fn get(&self, name: &TableName) -> Result<Arc<TableHandle>> {
        if let Some(handle) = read_lock(&self.tables).get(name) {
            return Ok(Arc::clone(handle));
        }
        self.discover(name)?
            .ok_or_else(|| StorageError::TableNotFound {
                name: name.to_string(),
                hint: None,
            })
    }

    /// The table `name`, which must be in `group`; a table of that name elsewhere is not found,
    /// with a hint saying where it is.
    /// When the name is in both groups on disk (a duplicate), asking for the location not
    /// served is a conflict naming both files, so either location answers the same way
    /// whichever file the catalog happens to serve.
    pub fn get_in_group(&self, group: &GroupName, name: &TableName) -> Result<Arc<TableHandle>> {
        let handle = self.get(name)?;
        if &handle.group == group {
            Ok(handle)
        } else {
            Err(self.other_group_error(group, &handle))
        }
    }

    /// Storage facts of a table.
    pub fn info(&self, handle: &TableHandle) -> TableInfo {
        let file = &handle.file;
        let stored = file.stored_schema();
        let columns = file
            .schema()
            .fields()
            .iter()
            .zip(stored.fields())
            .map(|(served, stored)| ColumnInfo {
                name: served.name().clone(),
                logical_type: dtype_name(served.data_type()),
                stored_type: dtype_name(stored.data_type()),
            })
            .collect();
        let arrow_bytes = file
            .meta()
            .map(|m| m.arrow_bytes)
            .unwrap_or_else(|| file.uncompressed_size());
        TableInfo {
            group: handle.group.to_string(),
            name: handle.name.to_string(),
            relative_path: self.layout.relative_table_path(&handle.group, &handle.name),
            file_size_bytes: file.file_size(),
            row_count: file.row_count(),
            row_group_count: file.row_group_count(),
            columns,
            arrow_bytes,
            modified: rfc3339(file.modified()),
            version: handle.version,
            entity_key: handle.entity_key.clone(),
            timestamp_field: handle.timestamp_field.clone(),
        }
    }

    /// Looks for a table not in the catalog on disk: the inferred group first, then every
    /// group folder.
    pub(super) fn discover(&self, name: &TableName) -> Result<Option<Arc<TableHandle>>> {
        if let Some(remote) = &self.remote {
            self.follow(remote, name)?;
            return Ok(self.peek(name));
        }
        let mut groups: Vec<GroupName> = Vec::new();
        if let Ok(g) = infer_group(name.as_str()).parse() {
            groups.push(g);
        }
        groups.extend(
            self.group_dirs()
                .into_iter()
                .filter(|g| g.as_str() != infer_group(name.as_str())),
        );
        for group in groups {
            let path = self.layout.table_path(&group, name);
            if path.is_file() {
                let handle = match self.load(&group, name, &path, None) {
                    Ok(handle) => Arc::new(handle),
                    Err(e) => {
                        self.mark_unreadable(&group, name, &e);
                        return Err(e);
                    }
                };
                write_lock(&self.tables).insert(name.clone(), Arc::clone(&handle));
                self.mark_readable(name);
                return Ok(Some(handle));
            }
        }
        Ok(None)
    }

    /// Opens a table file found on disk and decides its version: the sidecar's when the
    /// sidecar describes this very file and no part is newer; the newest footer's (base file
    /// or part) when it is a featurestore write newer than the sidecar (whose update was
    /// lost); otherwise the file was changed by another tool and gets the next version,
    /// recorded in a new sidecar. `previous` is the version of the snapshot being replaced, if
    /// any, so versions only ever increase.
    pub(super) fn load(
        &self,
        group: &GroupName,
        name: &TableName,
        path: &Path,
        previous: Option<u64>,
    ) -> Result<TableHandle> {
        let file = self.open_with_parts(group, name, path)?;
        let (entity_key, timestamp_field) = keys_of(file.meta(), file.schema());
        let sidecar_path = self.layout.sidecar_path(group, name);
        let sidecar = read_sidecar(&sidecar_path).filter(|s| !s.deleted);
        let fingerprint = file.fingerprint();
        let known = sidecar
            .as_ref()
            .filter(|s| s.fingerprint == Some(fingerprint))
            .map(|s| s.version);
        let floor = self.latest_version(name).max(previous.unwrap_or(0));
        // The sidecar identifies the base file only: a part appended after it was written
        // (the process died before the sidecar caught up) shows in the parts' footers, and the
        // table must not keep the version readers saw without that part.
        let footer = file.footer_version();
        let version = match (known, footer) {
            (Some(v), f) if v >= floor && f.is_none_or(|f| f <= v) => v,
            (_, Some(f)) if f > floor => f,
            _ => floor + 1,
        };
        if known != Some(version) {
            let record = Sidecar {
                version,
                deleted: false,
                row_count: file.row_count(),
                file_size_bytes: file.file_size(),
                table: file.meta().cloned(),
                fingerprint: Some(fingerprint),
            };
            if let Err(e) = write_json(&sidecar_path, &record) {
                tracing::warn!(table = %name, error = %e, "could not record the version of a table changed on disk");
            }
        }
        let handle = TableHandle {
            group: group.clone(),
            name: name.clone(),
            file,
            version,
            entity_key,
            timestamp_field,
        };
        // A table found on disk (written by another tool, or before history existed, or
        // whose write's history line was lost) gets its version recorded now.
        self.reconcile_history(&handle);
        Ok(handle)
    }

    /// The highest version ever recorded for `name`, in any group (names are unique across
    /// groups, so a table moved or re-created elsewhere continues its count).
    pub(super) fn latest_version(&self, name: &TableName) -> u64 {
        if let Some(remote) = &self.remote {
            return remote.known_head(name).map_or(0, |head| head.version);
        }
        let metadata = self.layout.root().join("metadata");
        fs::read_dir(metadata)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|group| read_sidecar(&group.path().join(format!("{name}.json"))))
            .map(|s| s.version)
            .max()
            .unwrap_or(0)
    }

    pub(super) fn group_dirs(&self) -> Vec<GroupName> {
        let mut groups: Vec<GroupName> = fs::read_dir(self.layout.features_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        groups.sort();
        groups
    }
}

pub(super) fn read_sidecar(path: &Path) -> Option<Sidecar> {
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Sidecar>(&bytes).ok())
}

/// The entity key and timestamp field of a file: those featurestore recorded in its footer,
/// else the default column names when the file has them (a file another tool wrote).
pub(super) fn keys_of(
    meta: Option<&TableMeta>,
    schema: &arrow::datatypes::SchemaRef,
) -> (Vec<String>, Option<String>) {
    if let Some(meta) = meta {
        return (meta.entity_key.clone(), meta.timestamp_field.clone());
    }
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    (
        default_if_present(&columns, DEFAULT_ENTITY_KEY)
            .into_iter()
            .collect(),
        default_if_present(&columns, DEFAULT_TIMESTAMP_FIELD),
    )
}
