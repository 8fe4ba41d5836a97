//! Saves and deletes: a table replaced (or created) from records or a batch, narrowed and
//! written atomically, then installed in the catalog.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use super::catalog::TableHandle;
use super::downcast::downcast_onto;
use super::error::{Result, StorageError};
use super::history::VersionOp;
use super::meta::{LogicalType, Sidecar, TableMeta, timestamp_type};
use super::records::RecordColumns;
use super::remote::Op;
use super::table::TableFile;
use super::versions::HistoryWrite;
use super::writer::{sync_dir, write_json, write_table};
use super::{DEFAULT_ENTITY_KEY, DEFAULT_TIMESTAMP_FIELD, Storage, convert, rfc3339, write_lock};
use crate::model::{GroupName, TableName};
use crate::stats::VersionStats;

/// A table file's content, narrowed and described, about to be written.
pub(super) struct PreparedSave {
    pub(super) path: PathBuf,
    pub(super) stored: RecordBatch,
    pub(super) meta: TableMeta,
    pub(super) created: bool,
    /// What the table's history records for this write.
    pub(super) history: HistoryWrite,
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
    /// The token writing, when auth is on: the table's history records it.
    pub written_by: Option<String>,
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

impl Storage {
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
        self.retrying(|| {
            self.save_records_once(group, name, records, declaration.clone(), null_types)
        })
    }

    fn save_records_once(
        &self,
        group: &GroupName,
        name: &TableName,
        records: &RecordColumns,
        declaration: Declaration,
        null_types: &[(String, LogicalType)],
    ) -> Result<SaveOutcome> {
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _across = self.lock_across_processes(name);
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
        self.retrying(|| {
            let lock = self.write_lock(name);
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let _across = self.lock_across_processes(name);
            let existing = self.existing_for_write(group, name)?;
            self.save_locked(group, name, batch, declaration.clone(), existing)
        })
    }

    /// Deletes `group/name`; returns the version it had. The sidecar keeps the version
    /// counter so a re-created table continues after it.
    pub fn delete(
        &self,
        group: &GroupName,
        name: &TableName,
        written_by: Option<String>,
    ) -> Result<u64> {
        self.retrying(|| self.delete_once(group, name, written_by.clone()))
    }

    fn delete_once(
        &self,
        group: &GroupName,
        name: &TableName,
        written_by: Option<String>,
    ) -> Result<u64> {
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _across = self.lock_across_processes(name);
        if let Some(remote) = &self.remote {
            self.follow_locked(remote, name)?;
            // Not `get_in_group`: its discovery of a missing table takes the lock held here.
            let handle = self.peek(name).ok_or_else(|| StorageError::TableNotFound {
                name: name.to_string(),
                hint: None,
            })?;
            if &handle.group != group {
                return Err(self.other_group_error(group, &handle));
            }
            return self.commit_delete(remote, &handle, written_by);
        }
        let handle = self.get_in_group(group, name)?;
        // The base file keeps its history name and the parts stay: the deleted table can be
        // restored while retention keeps its versions.
        self.reconcile_history(&handle);
        let path = self.layout.table_path(group, name);
        fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        sync_dir(&self.layout.group_dir(group))?;
        // The deletion is a version of its own, so a re-created table continues after it.
        let deletion = handle.version.max(self.latest_version(name)) + 1;
        if let Err(e) = write_json(
            &self.layout.sidecar_path(group, name),
            &Sidecar::deleted_at(deletion),
        ) {
            tracing::warn!(table = %name, error = %e, "could not record the deleted table's version");
        }
        self.record_delete(&handle, deletion, written_by);
        write_lock(&self.tables).remove(name);
        self.mark_readable(name);
        Ok(handle.version)
    }

    /// The current handle of a table about to be written, checking the group.
    pub(super) fn existing_for_write(
        &self,
        group: &GroupName,
        name: &TableName,
    ) -> Result<Option<Arc<TableHandle>>> {
        // The s3 kind writes on top of the newest commit in the bucket, not of what the last
        // poll saw; the catalog is read without `get`, whose discovery takes the lock held here.
        let found = match &self.remote {
            Some(remote) => {
                self.follow_locked(remote, name)?;
                self.peek(name).ok_or_else(|| StorageError::TableNotFound {
                    name: name.to_string(),
                    hint: None,
                })
            }
            None => self.get(name),
        };
        match found {
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

    pub(super) fn save_locked(
        &self,
        group: &GroupName,
        name: &TableName,
        batch: &RecordBatch,
        declaration: Declaration,
        existing: Option<Arc<TableHandle>>,
    ) -> Result<SaveOutcome> {
        let history = HistoryWrite::Version {
            op: if existing.is_some() {
                VersionOp::Replace
            } else {
                VersionOp::Create
            },
            written_by: declaration.written_by.clone(),
            restored_from: None,
        };
        self.save_locked_as(group, name, batch, declaration, existing, history, None)
    }

    /// [`Storage::save_locked`], recording `history` for the write. The new version's
    /// statistics are `stats` when given (a restore copies its version's), else computed from
    /// `batch` on a second thread while the table is encoded and written, so they add little
    /// to the save's wall time.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn save_locked_as(
        &self,
        group: &GroupName,
        name: &TableName,
        batch: &RecordBatch,
        declaration: Declaration,
        existing: Option<Arc<TableHandle>>,
        history: HistoryWrite,
        stats: Option<VersionStats>,
    ) -> Result<SaveOutcome> {
        let mut prepared = self.prepare_save(
            group,
            name,
            batch,
            declaration,
            existing.as_deref(),
            None,
            false,
        )?;
        prepared.history = history;
        let version = prepared.meta.version;
        std::thread::scope(|scope| {
            let computing = (self.stats_enabled() && stats.is_none())
                .then(|| scope.spawn(|| VersionStats::compute(std::slice::from_ref(batch))));
            let finished = move || match computing.map(|c| c.join()) {
                Some(Ok(computed)) => Some(computed),
                Some(Err(_)) => {
                    tracing::warn!(table = %name, version, "computing the version's statistics failed; they are computed again when asked for");
                    None
                }
                None => stats,
            };
            if let Some(remote) = &self.remote {
                // Kept only once the commit made the version this writer's: a writer that
                // loses the race must not describe the winner's version.
                let outcome =
                    self.commit_base(remote, group, name, prepared, Op::Replace, Vec::new())?;
                if let Some(stats) = finished() {
                    self.keep_stats(group, name, outcome.version, stats);
                }
                return Ok(outcome);
            }
            write_table(
                &prepared.path,
                &prepared.stored,
                &prepared.meta,
                self.config.write_settings(),
            )?;
            // Before the version is installed, so no reader finds it without statistics; the
            // write lock is held, so no other writer makes this version meanwhile.
            if let Some(stats) = finished() {
                self.keep_stats(group, name, version, stats);
            }
            self.install_save(group, name, prepared)
        })
    }

    /// Checks a logical batch about to become `group/name`'s file and narrows it: to the
    /// types of `keep_types` where the values fit them (a fold keeps the table's stored types),
    /// else by the downcast rules. The file gets the next version, or `existing`'s with
    /// `same_rows` (a fold that changes no row: cached pages of that version stay true).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepare_save(
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
        let written_by = declaration.written_by.clone();
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
            history: HistoryWrite::Version {
                op: if existing.is_some() {
                    VersionOp::Replace
                } else {
                    VersionOp::Create
                },
                written_by,
                restored_from: None,
            },
        })
    }

    /// Opens a table file just written from `prepared` and makes it the current snapshot:
    /// sidecar, catalog, and the removal of the parts the replaced file had.
    pub(super) fn install_save(
        &self,
        group: &GroupName,
        name: &TableName,
        prepared: PreparedSave,
    ) -> Result<SaveOutcome> {
        let PreparedSave {
            path,
            meta,
            created,
            history,
            stored,
        } = prepared;
        let file = TableFile::open(&path)?;
        let base_id = file.base().base_id();
        if let Err(e) = self.keep_base_in_history(group, name, &path, &base_id) {
            // The version stays readable while it is current; the next load links it.
            tracing::warn!(table = %name, error = %e, "could not keep the table file in its history");
        }
        let rows_written = stored.num_rows() as u64;
        let bytes_written = file.file_size();
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
        let handle = Arc::new(handle);
        let previous = write_lock(&self.tables).insert(name.clone(), Arc::clone(&handle));
        self.mark_readable(name);
        // The replaced base's parts stay for its versions; the history sweep removes them
        // when retention lets them go.
        self.record_version(
            &handle,
            previous.as_deref(),
            &history,
            rows_written,
            bytes_written,
        );
        Ok(outcome)
    }
}

/// `batch` with each all-null column retyped: as `hints` says, else as in `existing`.
pub(super) fn type_null_columns(
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

pub(super) fn default_if_present(columns: &[String], default: &str) -> Option<String> {
    columns
        .iter()
        .any(|c| c == default)
        .then(|| default.to_owned())
}

pub(super) fn missing_declared(what: &str, column: &str) -> StorageError {
    StorageError::invalid(
        column,
        None,
        format!("{what} names column {column:?}, which the records do not have"),
    )
}

pub(super) fn resolve_entity_key(
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

pub(super) fn check_entity_key_type(batch: &RecordBatch, key: &str) -> Result<()> {
    match batch.column_by_name(key).map(|c| c.data_type()) {
        Some(DataType::Int64 | DataType::Utf8) => Ok(()),
        _ => Err(StorageError::invalid(
            key,
            None,
            format!("entity key column {key:?} must hold integers or strings"),
        )),
    }
}
