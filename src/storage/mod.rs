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

mod convert;
mod downcast;
mod duplicates;
mod error;
mod fold;
mod layout;
mod meta;
pub mod object;
mod presence;
mod reader;
mod records;
mod table;
mod typed;
mod writer;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

pub use convert::{parse_timestamp_micros, records_to_batch};
pub use downcast::{DowncastPolicy, FloatDowncast, IntegerDowncast, downcast};
pub use duplicates::DuplicateTable;
pub use error::{Result, StorageError};
pub use fold::FoldOutcome;
pub use layout::{DEFAULT_GROUPS, Layout};
pub use meta::{ColumnMeta, LogicalType, TableMeta, dtype_name, micros_type, timestamp_type};
pub use records::{JsonScalar, RecordColumns};
pub use table::TableFile;
pub use typed::{json_columns_to_batch, logical_schema};

use crate::model::{GroupName, TableName, infer_group};
use downcast::downcast_onto;
use meta::Sidecar;
use writer::{WriteSettings, sync_dir, write_json, write_table};

/// Writes a JSON document atomically (temp file, fsync, rename), for metadata kept beside the
/// tables such as the registry.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_json(path, value)
}

/// The column inferred as entity key when none is declared.
pub const DEFAULT_ENTITY_KEY: &str = "entity_id";
/// The column inferred as timestamp field when none is declared.
pub const DEFAULT_TIMESTAMP_FIELD: &str = "event_timestamp";

/// `[storage]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The data root (holds `features/`, `metadata/`, `registry/`, `cache/`).
    pub data_dir: PathBuf,
    /// `lossless`, `always` or `never`.
    pub float_downcast: FloatDowncast,
    /// `signed`, `unsigned` or `never`.
    pub integer_downcast: IntegerDowncast,
    /// Strings are stored as dictionaries when distinct / total is below this.
    pub dictionary_ratio: f64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Rows per Parquet data page.
    pub page_rows: usize,
    /// Pushed parts a table may gather under steady pushes before they are folded into its
    /// file without waiting for a quiet moment.
    pub compact_after_parts: usize,
    /// Quiet time after a table's last push before its parts are folded into its file.
    pub fold_delay_ms: u64,
    /// Most of the time background folds of one table may take, as a share of wall time:
    /// after a fold that took `d`, the table's next one waits at least `d × (1 / share − 1)`.
    pub fold_max_share: f64,
}

impl StorageConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.dictionary_ratio >= 0.0 && self.dictionary_ratio <= 1.0) {
            return Err("storage.dictionary_ratio must be between 0 and 1".into());
        }
        if self.row_group_rows == 0 {
            return Err("storage.row_group_rows must be at least 1".into());
        }
        if self.page_rows == 0 {
            return Err("storage.page_rows must be at least 1".into());
        }
        if self.compact_after_parts == 0 {
            return Err("storage.compact_after_parts must be at least 1".into());
        }
        if self.fold_delay_ms > 60_000 {
            return Err("storage.fold_delay_ms must be at most 60000 (one minute)".into());
        }
        if !(self.fold_max_share > 0.0 && self.fold_max_share <= 1.0) {
            return Err("storage.fold_max_share must be above 0 and at most 1".into());
        }
        Ok(())
    }

    fn policy(&self) -> DowncastPolicy {
        DowncastPolicy {
            float: self.float_downcast,
            integer: self.integer_downcast,
            dictionary_ratio: self.dictionary_ratio,
        }
    }

    fn write_settings(&self) -> WriteSettings {
        WriteSettings {
            row_group_rows: self.row_group_rows,
            page_rows: self.page_rows,
        }
    }
}

/// A table file's content, narrowed and described, about to be written.
struct PreparedSave {
    path: PathBuf,
    stored: RecordBatch,
    meta: TableMeta,
    created: bool,
}

/// Entity key and timestamp field a writer declares for a table (both optional).
#[derive(Debug, Clone, Default)]
pub struct Declaration {
    /// Entity key columns.
    pub entity_key: Option<Vec<String>>,
    /// Event timestamp column.
    pub timestamp_field: Option<String>,
    /// A second timestamp column (a view's `created_timestamp_field`) whose RFC 3339 strings
    /// become timestamps like the event timestamp's; only JSON saves need it said.
    pub created_timestamp_field: Option<String>,
}

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

/// What a save did.
#[derive(Debug, Clone)]
pub struct SaveOutcome {
    /// True when the table did not exist before.
    pub created: bool,
    /// The new version.
    pub version: u64,
    /// Rows written.
    pub rows: u64,
    /// The file, relative to the data root.
    pub relative_path: String,
    /// Entity key columns in effect (declared, kept from before, or inferred).
    pub entity_key: Vec<String>,
    /// Timestamp field in effect.
    pub timestamp_field: Option<String>,
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    /// The table's new version.
    pub version: u64,
    /// Rows appended.
    pub rows: u64,
    /// Rows in the table now.
    pub total_rows: u64,
    /// Parts not yet compacted into the base file (0 right after a compaction).
    pub parts: usize,
    /// Whether this append folded the parts into a new base file.
    pub compacted: bool,
    /// True when the table did not exist and the append created it.
    pub created: bool,
    /// The snapshot (version, snapshot id) the rows were appended to, read under the table's
    /// write lock; `None` when the append created the table. A caller that read the table
    /// before calling may have seen an older snapshot: a replace can land in between.
    pub appended_to: Option<(u64, u64)>,
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
    /// Held while the tree is open, so no other process sweeps under this one's writes.
    _presence: presence::Presence,
}

impl Storage {
    /// Opens (creating the skeleton of) the tree at `config.data_dir`, sweeps temporary files
    /// left by a crash (when no other process has the tree open), and loads every readable
    /// table. Unreadable tables are logged and
    /// skipped so one bad file cannot keep the server down.
    pub fn open(config: StorageConfig) -> Result<Self> {
        let layout = Layout::new(&config.data_dir);
        for dir in layout.skeleton_dirs() {
            fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        }
        // Crash leftovers are only swept by a process alone on the tree: beside a running
        // server (the CLI), they may be the server's writes in progress.
        let (presence, alone) = presence::Presence::join(&layout.root().join("metadata"));
        let storage = Self {
            layout,
            config,
            tables: RwLock::new(HashMap::new()),
            write_locks: Mutex::new(HashMap::new()),
            unreadable: Mutex::new(HashMap::new()),
            duplicates: Mutex::new(HashMap::new()),
            _presence: presence,
        };
        if alone {
            storage.sweep_temp_files();
        }
        let _ = storage.rescan();
        if alone {
            storage.sweep_orphan_parts();
        }
        Ok(storage)
    }

    /// The tree's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

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

    fn mark_unreadable(&self, group: &GroupName, name: &TableName, error: &StorageError) {
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

    fn mark_readable(&self, name: &TableName) {
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

    /// Replaces (or creates) `group/name` from JSON records.
    pub fn save_records(
        &self,
        group: &GroupName,
        name: &TableName,
        records: &RecordColumns,
        declaration: Declaration,
    ) -> Result<SaveOutcome> {
        self.save_records_typed(group, name, records, declaration, &[])
    }

    /// [`Storage::save_records`], with types for columns whose values are all null: such a
    /// column takes the type `null_types` names for it (from the registry), else the type it
    /// had in the table being replaced, else stays typed null until a push brings values.
    /// A column typed null could never say which values it lacks, nor take pushed values.
    pub fn save_records_typed(
        &self,
        group: &GroupName,
        name: &TableName,
        records: &RecordColumns,
        declaration: Declaration,
        null_types: &[(String, LogicalType)],
    ) -> Result<SaveOutcome> {
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let existing = self.existing_for_write(group, name)?;
        let timestamp_field = declaration.timestamp_field.clone().or_else(|| {
            let previous = existing.as_ref().and_then(|h| h.timestamp_field.clone());
            previous
                .filter(|f| records.names().contains(f))
                .or_else(|| default_if_present(records.names(), DEFAULT_TIMESTAMP_FIELD))
        });
        if let Some(field) = &timestamp_field
            && !records.names().contains(field)
        {
            return Err(missing_declared("timestamp_field", field));
        }
        if let Some(field) = &declaration.created_timestamp_field
            && !records.names().contains(field)
        {
            return Err(missing_declared("created_timestamp_field", field));
        }
        let timestamp_fields: Vec<&str> = timestamp_field
            .iter()
            .chain(declaration.created_timestamp_field.iter())
            .map(String::as_str)
            .collect();
        let batch = convert::records_to_batch_with(records, &timestamp_fields)?;
        let batch = type_null_columns(batch, null_types, existing.as_deref())?;
        let declaration = Declaration {
            timestamp_field,
            ..declaration
        };
        self.save_locked(group, name, &batch, declaration, existing)
    }

    /// Replaces (or creates) `group/name` from a batch with logical types (Int64, Float64,
    /// Float32, Utf8, Boolean, Timestamp(µs, UTC), Null).
    pub fn save_batch(
        &self,
        group: &GroupName,
        name: &TableName,
        batch: &RecordBatch,
        declaration: Declaration,
    ) -> Result<SaveOutcome> {
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let existing = self.existing_for_write(group, name)?;
        self.save_locked(group, name, batch, declaration, existing)
    }

    /// Deletes `group/name`; returns the version it had. The sidecar keeps the version
    /// counter so a re-created table continues after it.
    pub fn delete(&self, group: &GroupName, name: &TableName) -> Result<u64> {
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let handle = self.get_in_group(group, name)?;
        let path = self.layout.table_path(group, name);
        fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        sync_dir(&self.layout.group_dir(group))?;
        self.remove_parts(group, name, None);
        let tombstone = Sidecar {
            version: handle.version,
            deleted: true,
            row_count: 0,
            file_size_bytes: 0,
            table: None,
            fingerprint: None,
        };
        if let Err(e) = write_json(&self.layout.sidecar_path(group, name), &tombstone) {
            tracing::warn!(table = %name, error = %e, "could not record the deleted table's version");
        }
        write_lock(&self.tables).remove(name);
        self.mark_readable(name);
        Ok(handle.version)
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

    /// Whether a file can be created in the data root right now.
    pub fn is_writable(&self) -> bool {
        let probe = Layout::temp_path_for(&self.layout.root().join("write-probe"));
        let ok = fs::File::create(&probe).is_ok();
        let _ = fs::remove_file(&probe);
        ok
    }

    fn write_lock(&self, name: &TableName) -> Arc<Mutex<()>> {
        let mut locks = self.write_locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(name.clone()).or_default())
    }

    /// The current handle of a table about to be written, checking the group.
    fn existing_for_write(
        &self,
        group: &GroupName,
        name: &TableName,
    ) -> Result<Option<Arc<TableHandle>>> {
        match self.get(name) {
            Ok(h) if &h.group != group => match self.other_group_error(group, &h) {
                duplicate @ StorageError::DuplicateTable { .. } => Err(duplicate),
                _ => Err(StorageError::NameInOtherGroup {
                    name: name.to_string(),
                    existing_group: h.group.to_string(),
                }),
            },
            Ok(h) => Ok(Some(h)),
            Err(StorageError::TableNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save_locked(
        &self,
        group: &GroupName,
        name: &TableName,
        batch: &RecordBatch,
        declaration: Declaration,
        existing: Option<Arc<TableHandle>>,
    ) -> Result<SaveOutcome> {
        let prepared = self.prepare_save(
            group,
            name,
            batch,
            declaration,
            existing.as_deref(),
            None,
            false,
        )?;
        write_table(
            &prepared.path,
            &prepared.stored,
            &prepared.meta,
            self.config.write_settings(),
        )?;
        self.install_save(group, name, prepared)
    }

    /// Checks a logical batch about to become `group/name`'s file and narrows it: to the
    /// types of `keep_types` where the values fit them (a fold keeps the table's stored types),
    /// else by the downcast rules. The file gets the next version, or `existing`'s with
    /// `same_rows` (a fold that changes no row: cached pages of that version stay true).
    #[allow(clippy::too_many_arguments)]
    fn prepare_save(
        &self,
        group: &GroupName,
        name: &TableName,
        batch: &RecordBatch,
        declaration: Declaration,
        existing: Option<&TableHandle>,
        keep_types: Option<&arrow::datatypes::Schema>,
        same_rows: bool,
    ) -> Result<PreparedSave> {
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let entity_key = resolve_entity_key(&columns, declaration.entity_key, existing)?;
        for key in &entity_key {
            check_entity_key_type(batch, key)?;
        }
        if let Some(field) = &declaration.timestamp_field {
            let column = batch
                .column_by_name(field)
                .ok_or_else(|| missing_declared("timestamp_field", field))?;
            if column.data_type() != &timestamp_type() && column.data_type() != &DataType::Null {
                return Err(StorageError::invalid(
                    field,
                    None,
                    format!("timestamp_field {field:?} must hold RFC 3339 timestamps"),
                ));
            }
        }
        let latest = self.latest_version(name);
        let version = match existing {
            Some(h) if same_rows && h.version >= latest => h.version,
            _ => existing.map_or(0, |h| h.version).max(latest) + 1,
        };
        let (stored, logical_columns) = downcast_onto(batch, self.config.policy(), keep_types)?;
        let meta = TableMeta {
            version,
            entity_key: entity_key.clone(),
            timestamp_field: declaration.timestamp_field.clone(),
            columns: logical_columns,
            arrow_bytes: batch.get_array_memory_size() as u64,
            written_at: rfc3339(SystemTime::now()),
        };
        Ok(PreparedSave {
            path: self.layout.table_path(group, name),
            stored,
            meta,
            created: existing.is_none(),
        })
    }

    /// Opens a table file just written from `prepared` and makes it the current snapshot:
    /// sidecar, catalog, and the removal of the parts the replaced file had.
    fn install_save(
        &self,
        group: &GroupName,
        name: &TableName,
        prepared: PreparedSave,
    ) -> Result<SaveOutcome> {
        let PreparedSave {
            path,
            meta,
            created,
            ..
        } = prepared;
        let file = TableFile::open(&path)?;
        let version = meta.version;
        let entity_key = meta.entity_key.clone();
        let timestamp_field = meta.timestamp_field.clone();
        let sidecar = Sidecar {
            version,
            deleted: false,
            row_count: file.row_count(),
            file_size_bytes: file.file_size(),
            table: Some(meta),
            fingerprint: Some(file.fingerprint()),
        };
        if let Err(e) = write_json(&self.layout.sidecar_path(group, name), &sidecar) {
            // The footer is the authority; a stale sidecar only costs a readable copy.
            tracing::warn!(table = %name, error = %e, "could not write the table's sidecar");
        }
        let outcome = SaveOutcome {
            created,
            version,
            rows: file.row_count(),
            relative_path: self.layout.relative_table_path(group, name),
            entity_key: entity_key.clone(),
            timestamp_field: timestamp_field.clone(),
        };
        let handle = TableHandle {
            group: group.clone(),
            name: name.clone(),
            file,
            version,
            entity_key,
            timestamp_field,
        };
        write_lock(&self.tables).insert(name.clone(), Arc::new(handle));
        self.mark_readable(name);
        // The new base file owns no parts: those of the replaced one became invisible in the
        // rename and are garbage now.
        self.remove_parts(group, name, None);
        Ok(outcome)
    }

    /// Looks for a table not in the catalog on disk: the inferred group first, then every
    /// group folder.
    fn discover(&self, name: &TableName) -> Result<Option<Arc<TableHandle>>> {
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
    fn load(
        &self,
        group: &GroupName,
        name: &TableName,
        path: &Path,
        previous: Option<u64>,
    ) -> Result<TableHandle> {
        let file = self.open_with_parts(group, name, path)?;
        let columns: Vec<String> = file
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (entity_key, timestamp_field) = match file.meta() {
            Some(m) => (m.entity_key.clone(), m.timestamp_field.clone()),
            None => (
                default_if_present(&columns, DEFAULT_ENTITY_KEY)
                    .into_iter()
                    .collect(),
                default_if_present(&columns, DEFAULT_TIMESTAMP_FIELD),
            ),
        };
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
        Ok(TableHandle {
            group: group.clone(),
            name: name.clone(),
            file,
            version,
            entity_key,
            timestamp_field,
        })
    }

    /// The highest version ever recorded for `name`, in any group (names are unique across
    /// groups, so a table moved or re-created elsewhere continues its count).
    fn latest_version(&self, name: &TableName) -> u64 {
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

    fn group_dirs(&self) -> Vec<GroupName> {
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

    /// Brings the catalog in line with the tree: loads new or changed files, drops removed
    /// ones. Files that fail to open (half-copied, corrupt) are skipped with a log line, and
    /// the previous snapshot, if any, keeps serving.
    ///
    /// A name found in several groups (another tool wrote a second file) keeps being served
    /// from the group the catalog already had; a name new to the catalog is served from the
    /// group a lookup would try first (its inferred group, then by name). The duplicate is
    /// logged once, when it appears or changes, and reported by [`Storage::duplicates`].
    pub fn rescan(&self) -> Vec<String> {
        let mut changed = Vec::new();
        let mut found: HashMap<TableName, Vec<GroupName>> = HashMap::new();
        for group in self.group_dirs() {
            let entries = fs::read_dir(self.layout.group_dir(&group))
                .into_iter()
                .flatten()
                .flatten();
            for entry in entries {
                if let Some((g, name)) =
                    Layout::table_from_parts(group.as_str().as_ref(), &entry.file_name())
                {
                    found.entry(name).or_default().push(g);
                }
            }
        }
        let mut duplicates = HashMap::new();
        for (name, mut groups) in found.iter().map(|(n, g)| (n, g.clone())) {
            let Some(served) = self.served_group(name, &groups) else {
                continue;
            };
            groups.retain(|g| g != &served);
            if !groups.is_empty() {
                duplicates.insert(name.clone(), (served.clone(), groups));
            }
            if self.refresh_table(&served, name) {
                changed.push(name.to_string());
            }
        }
        self.record_duplicates(duplicates);
        write_lock(&self.tables).retain(|name, _| {
            let keep = found.contains_key(name);
            if !keep {
                changed.push(name.to_string());
            }
            keep
        });
        guard(&self.unreadable).retain(|name, _| found.contains_key(name));
        changed
    }

    /// Reloads one table if its file changed on disk since it was opened.
    /// Reloads one table if its file changed on disk since it was opened; true if it did.
    fn refresh_table(&self, group: &GroupName, name: &TableName) -> bool {
        let path = self.layout.table_path(group, name);
        // Checked without the write lock first, so an unchanged tree costs no lock; then again
        // under it, since a write (a save, a fold) may have installed this very file in
        // between, and loading it over that write's handle would put back a stale version.
        if self
            .catalog_matches_file(group, name, &path)
            .unwrap_or(true)
        {
            return false;
        }
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .catalog_matches_file(group, name, &path)
            .unwrap_or(true)
        {
            return false;
        }
        let current = read_lock(&self.tables).get(name).cloned();
        match self.load(group, name, &path, current.map(|h| h.version)) {
            Ok(handle) => {
                write_lock(&self.tables).insert(name.clone(), Arc::new(handle));
                self.mark_readable(name);
                true
            }
            Err(e) => {
                // Log once per damage, not on every rescan that finds it again.
                if !guard(&self.unreadable).contains_key(name) {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable table file");
                }
                self.mark_unreadable(group, name, &e);
                false
            }
        }
    }

    /// Whether the catalog's handle of `name` is the file at `path` as it is now (same group,
    /// length and modification time); `None` when the file is gone.
    fn catalog_matches_file(
        &self,
        group: &GroupName,
        name: &TableName,
        path: &Path,
    ) -> Option<bool> {
        let stat = fs::metadata(path).ok()?;
        let current = read_lock(&self.tables).get(name).cloned();
        Some(current.is_some_and(|h| {
            h.group == *group
                && h.file.fingerprint().len == stat.len()
                && stat.modified().ok().map(|m| {
                    m.duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                }) == Some(h.file.fingerprint().modified_nanos)
        }))
    }

    fn sweep_temp_files(&self) {
        // Not the registry's folder: another process may be writing the registry right now,
        // so the registry sweeps its own temporary files, under its cross-process lock.
        let mut dirs = vec![self.layout.root().to_path_buf()];
        for top in ["features", "metadata"] {
            let top = self.layout.root().join(top);
            dirs.extend(
                fs::read_dir(&top)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
        for dir in dirs {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let file_name = entry.file_name();
                if file_name.to_str().is_some_and(Layout::is_temp_file) {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => {
                            tracing::info!(path = %entry.path().display(), "removed a temporary file left by an interrupted write")
                        }
                        Err(e) => {
                            tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a temporary file")
                        }
                    }
                }
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

/// `batch` with each all-null column retyped: as `hints` says, else as in `existing`.
fn type_null_columns(
    batch: RecordBatch,
    hints: &[(String, LogicalType)],
    existing: Option<&TableHandle>,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Null)
    {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let hinted = hints
            .iter()
            .find(|(column, _)| column == field.name())
            .map(|(_, t)| t.arrow_type())
            .or_else(|| {
                existing
                    .and_then(|h| h.file.schema().field_with_name(field.name()).ok())
                    .map(|f| f.data_type().clone())
            })
            .filter(|t| t != &DataType::Null && LogicalType::from_arrow(t).is_some());
        match hinted {
            Some(t) if field.data_type() == &DataType::Null => {
                fields.push(arrow::datatypes::Field::new(field.name(), t.clone(), true));
                arrays.push(arrow::array::new_null_array(&t, batch.num_rows()));
            }
            _ => {
                fields.push(field.as_ref().clone());
                arrays.push(Arc::clone(array));
            }
        }
    }
    let options =
        arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        arrays,
        &options,
    )?)
}

fn default_if_present(columns: &[String], default: &str) -> Option<String> {
    columns
        .iter()
        .any(|c| c == default)
        .then(|| default.to_owned())
}

fn missing_declared(what: &str, column: &str) -> StorageError {
    StorageError::invalid(
        column,
        None,
        format!("{what} names column {column:?}, which the records do not have"),
    )
}

fn resolve_entity_key(
    columns: &[String],
    declared: Option<Vec<String>>,
    existing: Option<&TableHandle>,
) -> Result<Vec<String>> {
    if let Some(declared) = declared {
        for key in &declared {
            if !columns.contains(key) {
                return Err(missing_declared("entity_key", key));
            }
        }
        return Ok(declared);
    }
    if let Some(previous) = existing.map(|h| &h.entity_key)
        && !previous.is_empty()
        && previous.iter().all(|k| columns.contains(k))
    {
        return Ok(previous.clone());
    }
    Ok(default_if_present(columns, DEFAULT_ENTITY_KEY)
        .into_iter()
        .collect())
}

fn check_entity_key_type(batch: &RecordBatch, key: &str) -> Result<()> {
    match batch.column_by_name(key).map(|c| c.data_type()) {
        Some(DataType::Int64 | DataType::Utf8) => Ok(()),
        _ => Err(StorageError::invalid(
            key,
            None,
            format!("entity key column {key:?} must hold integers or strings"),
        )),
    }
}

fn read_sidecar(path: &Path) -> Option<Sidecar> {
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Sidecar>(&bytes).ok())
}

/// Formats a time as RFC 3339 in UTC with second precision.
pub fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}
