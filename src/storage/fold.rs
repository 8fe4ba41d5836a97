//! Pushed rows: appended to a table as part files, then folded into the table file.
//!
//! An offline push writes its rows as one small Parquet file (a *part*) beside the table, so a
//! push costs the size of the push, not of the table. Parts are stored with exactly the table
//! file's stored schema ([`fit_exactly`]): a dataset reader given the table file and its parts
//! reads them as one table at any moment. A pushed value that needs a wider type than the
//! table stores (an `age` of 300 in an int8 column, a first value in an all-null column) is
//! not written as a part at all: the push folds the table with the wider type instead.
//!
//! A fold rewrites the table file with its parts' rows, so that tools reading only
//! `<name>.parquet` see every acknowledged row. It changes no row, nor their order, so the
//! table keeps its version; a push that widens the table adds rows and takes a new one. The store schedules folds in the background
//! (`store::folding`) and `POST /features/{group}/{name}/compact` asks for one.
//!
//! Hazards. A fold reads and writes the whole table, so its heavy part runs outside the
//! table's write lock, on a snapshot: pushes are not held up by it. The new file is staged
//! (complete and synced under a temporary name); then, under the lock, the parts pushed
//! meanwhile are hard-linked into the new file's parts folder and the staged file is renamed
//! into place, so no acknowledged row can be lost. Only when a replace or a widening push
//! changed the table file meanwhile is the staged file dropped and the fold redone under the
//! lock. A crash before the rename leaves the old file and its parts (the temporary and the
//! new parts folder are swept at start-up); after it, the new file with its parts, and the old
//! parts folder that start-up sweeps as an orphan.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arrow::array::ArrayRef;
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::downcast::fit_exactly;
use super::error::{Result, StorageError};
use super::history::VersionOp;
use super::meta::{ColumnMeta, LogicalType, Sidecar, TableMeta};
use super::reader::{ParquetFile, base_id_of};
use super::remote::Op;
use super::save::PreparedSave;
use super::versions::HistoryWrite;
use super::writer::{stage_table, sync_dir, write_json, write_table};
use super::{
    AppendOutcome, Declaration, SaveOutcome, Storage, TableFile, TableHandle, rfc3339, typed,
    write_lock,
};
use crate::model::{GroupName, TableName};

/// What a fold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldOutcome {
    /// The table's version: a fold changes no row, so it keeps the version (pages cached
    /// under it stay true); only the file and the snapshot id change.
    pub version: u64,
    /// Rows in the table file now.
    pub rows: u64,
    /// Parts folded into it (0 when there were none).
    pub parts_folded: usize,
    /// The snapshot folded, as (version, snapshot id).
    pub before: (u64, u64),
    /// The snapshot after the fold: the same rows as `before`, in one file.
    pub after: (u64, u64),
}

impl Storage {
    /// Appends rows to `group/name` as a new part file with the table file's stored types. A
    /// value that needs a wider type folds the table with the rows instead (`compacted` in the
    /// answer). `batch` must have the table's columns (in any order) with values of its
    /// logical types, or of any type for a column that holds only nulls. A table that does
    /// not exist yet is created from the batch, with `declaration`.
    pub fn append_batch(
        &self,
        group: &GroupName,
        name: &TableName,
        batch: &RecordBatch,
        declaration: Declaration,
    ) -> Result<AppendOutcome> {
        self.retrying(|| self.append_once(group, name, batch, declaration.clone()))
    }

    fn append_once(
        &self,
        group: &GroupName,
        name: &TableName,
        batch: &RecordBatch,
        declaration: Declaration,
    ) -> Result<AppendOutcome> {
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _across = self.lock_across_processes(name);
        let Some(current) = self.existing_for_write(group, name)? else {
            let saved = self.save_locked(group, name, batch, declaration, None)?;
            return Ok(AppendOutcome {
                version: saved.version,
                rows: saved.rows,
                total_rows: saved.rows,
                parts: 0,
                compacted: false,
                created: true,
                appended_to: None,
            });
        };
        let schema = current.file.schema();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                StorageError::invalid(
                    field.name(),
                    None,
                    format!(
                        "column {:?} is missing; every column of the table is required",
                        field.name()
                    ),
                )
            })?;
            columns.push((field.name().clone(), Arc::clone(column)));
        }
        if batch.num_columns() != columns.len() {
            return Err(StorageError::invalid(
                "",
                None,
                "the rows have columns the table does not have".into(),
            ));
        }
        let ordered = typed::to_logical(&RecordBatch::try_from_iter(columns)?)?;
        let appended_to = Some((current.version, current.file.snapshot_id()));
        let stored_schema = nullable(current.file.stored_schema());
        let Some(stored) = fit_exactly(&ordered, &stored_schema)? else {
            let widening = HistoryWrite::Version {
                op: VersionOp::Append,
                written_by: declaration.written_by.clone(),
                restored_from: None,
            };
            let stats = self.appended_stats(&current, &ordered);
            let saved = self.fold_locked(&current, Some((&ordered, widening)))?;
            if let Some(stats) = stats {
                self.keep_stats(group, name, saved.version, stats);
            }
            tracing::info!(table = %name, version = saved.version, "widened the table's stored types for pushed values");
            return Ok(AppendOutcome {
                version: saved.version,
                rows: ordered.num_rows() as u64,
                total_rows: saved.rows,
                parts: 0,
                compacted: true,
                created: false,
                appended_to,
            });
        };
        let logical_columns = ordered
            .schema()
            .fields()
            .iter()
            .map(|f| {
                LogicalType::from_arrow(f.data_type())
                    .map(|logical_type| ColumnMeta {
                        name: f.name().clone(),
                        logical_type,
                    })
                    .ok_or_else(|| {
                        StorageError::invalid(
                            f.name(),
                            None,
                            format!(
                                "column {:?} has type {}, which featurestore cannot append to",
                                f.name(),
                                f.data_type()
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let version = current.version.max(self.latest_version(name)) + 1;
        let meta = TableMeta {
            version,
            entity_key: current.entity_key.clone(),
            timestamp_field: current.timestamp_field.clone(),
            columns: logical_columns,
            arrow_bytes: ordered.get_array_memory_size() as u64,
            written_at: rfc3339(SystemTime::now()),
        };
        let stats = self.appended_stats(&current, &ordered);
        let handle = match &self.remote {
            Some(remote) => {
                self.commit_part(remote, &current, &stored, meta, declaration.written_by)?
            }
            None => self.append_part_file(&current, &stored, &meta, declaration.written_by)?,
        };
        // Kept once the part is the version's: a failed append leaves none that a later
        // version of that number would be read with.
        if let Some(stats) = stats {
            self.keep_stats(group, name, version, stats);
        }
        Ok(AppendOutcome {
            version,
            rows: ordered.num_rows() as u64,
            total_rows: handle.file.row_count(),
            parts: handle.file.part_count(),
            compacted: false,
            created: false,
            appended_to,
        })
    }

    /// The local kind's append: `stored` (rows with the table's stored types, described by
    /// `meta`) written as the next part file of `current`'s base, its sidecar updated, and the
    /// new snapshot installed. The caller holds the table's write lock.
    fn append_part_file(
        &self,
        current: &TableHandle,
        stored: &RecordBatch,
        meta: &TableMeta,
        written_by: Option<String>,
    ) -> Result<Arc<TableHandle>> {
        let (group, name) = (&current.group, &current.name);
        let version = meta.version;
        let base_id = current.file.base().base_id();
        let parts_dir = self.layout.parts_dir(group, name, &base_id);
        self.create_dirs_durably(&parts_dir)?;
        let path = self
            .layout
            .part_path(group, name, &base_id, current.file.part_count() + 1);
        write_table(&path, stored, meta, self.config.write_settings())?;
        let part = ParquetFile::open(&path)?;
        let bytes_written = part.file_size();
        let file = current.file.with_part(part);
        let sidecar = Sidecar {
            version,
            deleted: false,
            row_count: file.row_count(),
            file_size_bytes: file.file_size(),
            table: file.meta().cloned(),
            fingerprint: Some(file.fingerprint()),
        };
        if let Err(e) = write_json(&self.layout.sidecar_path(group, name), &sidecar) {
            tracing::warn!(table = %name, error = %e, "could not write the table's sidecar");
        }
        let handle = Arc::new(TableHandle {
            group: group.clone(),
            name: name.clone(),
            file,
            version,
            entity_key: current.entity_key.clone(),
            timestamp_field: current.timestamp_field.clone(),
        });
        write_lock(&self.tables).insert(name.clone(), Arc::clone(&handle));
        let history = HistoryWrite::Version {
            op: VersionOp::Append,
            written_by,
            restored_from: None,
        };
        self.record_version(
            &handle,
            Some(current),
            &history,
            stored.num_rows() as u64,
            bytes_written,
        );
        Ok(handle)
    }

    /// Folds the parts of `name` (which must be in `group` when one is given) into its table
    /// file, keeping its stored types. Readers keep the snapshot they hold; pushes wait only
    /// for the final links and rename (see the module's hazards).
    pub fn fold(&self, group: Option<&GroupName>, name: &TableName) -> Result<FoldOutcome> {
        if let Some(remote) = &self.remote {
            return self.retrying(|| self.fold_remote(remote, group, name));
        }
        let snapshot = match group {
            Some(group) => self.get_in_group(group, name)?,
            None => self.get(name)?,
        };
        self.fold_snapshot(&snapshot)
    }

    /// Folds `snapshot`, the table as it was when the fold began; what was pushed since is
    /// carried over under the lock. Split from [`Storage::fold`] so a test can push between
    /// the two.
    pub(super) fn fold_snapshot(&self, snapshot: &TableHandle) -> Result<FoldOutcome> {
        let name = &snapshot.name;
        let before = (snapshot.version, snapshot.file.snapshot_id());
        if snapshot.file.part_count() == 0 {
            return Ok(unchanged(snapshot));
        }
        let started = Instant::now();
        let mut prepared = self.prepare_fold(snapshot, None)?;
        // The staged rows are exactly the snapshot's, so they are its version, whatever the
        // sidecar says now: a push landing while this fold ran outside the lock moved the
        // sidecar on, and a version taken from it names the new file after a version a later
        // push gets too. The next fold of that push would then write a file with the same
        // name as the current one and strand its parts on disk (read twice after a restart).
        prepared.meta.version = snapshot.version;
        let staged = stage_table(
            &prepared.path,
            &prepared.stored,
            &prepared.meta,
            self.config.write_settings(),
        )?;
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _across = self.lock_across_processes(name);
        let Some(current) = self.peek(name).filter(|c| c.group == snapshot.group) else {
            return Err(StorageError::TableNotFound {
                name: name.to_string(),
                hint: Some("it was deleted while its parts were being folded".into()),
            });
        };
        let folded = snapshot.file.part_count();
        // Pushes that landed meanwhile appended parts to the same table file: they move over
        // to the new file, if it kept the stored types they were written with.
        let same_file = current.file.fingerprint() == snapshot.file.fingerprint()
            && current.file.part_count() >= folded;
        let late = &current.file.parts()[folded.min(current.file.part_count())..];
        let kept_types = same_types(
            prepared.stored.schema().fields(),
            snapshot.file.stored_schema(),
        );
        let (version, rows) = if same_file && (late.is_empty() || kept_types) {
            let base_id = base_id_of(prepared.meta.version);
            let moved = self.carry_parts(&snapshot.group, name, &base_id, late)?;
            staged.commit()?;
            let folded_base = snapshot.file.base().base_id();
            self.install_fold(&current, prepared, &moved, &folded_base, folded)?
        } else {
            // A replace or a widening push landed meanwhile: fold what is there now.
            drop(staged);
            if current.file.part_count() == 0 {
                return Ok(unchanged(&current));
            }
            let saved = self.fold_locked(&current, None)?;
            (saved.version, saved.rows)
        };
        let after = self
            .peek(name)
            .map_or(before, |h| (h.version, h.file.snapshot_id()));
        tracing::info!(table = %name, rows, parts = folded, carried = late.len(), millis = started.elapsed().as_millis() as u64, "folded pushed parts into the table file");
        Ok(FoldOutcome {
            version,
            rows,
            parts_folded: folded,
            before: (current.version, current.file.snapshot_id()),
            after,
        })
    }

    /// Links `late` (parts appended while a fold was prepared) into the parts folder of the
    /// new table file `base_id`, numbered from 1 in append order, durably. The old links stay
    /// until the new file is in place: a crash before its rename leaves the old table whole,
    /// and the new folder is an orphan that start-up sweeps.
    fn carry_parts(
        &self,
        group: &GroupName,
        name: &TableName,
        base_id: &str,
        late: &[ParquetFile],
    ) -> Result<Vec<PathBuf>> {
        if late.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self.layout.parts_dir(group, name, base_id);
        // No current file has this id (it is the version of a part, never of a table file),
        // so anything there is left over from an attempt that failed.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        }
        self.create_dirs_durably(&dir)?;
        let mut moved = Vec::with_capacity(late.len());
        for (i, part) in late.iter().enumerate() {
            let target = self.layout.part_path(group, name, base_id, i + 1);
            fs::hard_link(part.path(), &target).map_err(|e| StorageError::io(&target, e))?;
            moved.push(target);
        }
        sync_dir(&dir)?;
        Ok(moved)
    }

    /// Makes the folded file (already renamed into place) with the carried parts `moved` the
    /// current snapshot of `current`'s table: same rows, so same version. Returns the version
    /// and the rows.
    fn install_fold(
        &self,
        current: &TableHandle,
        prepared: PreparedSave,
        moved: &[PathBuf],
        folded_base: &str,
        parts_folded: usize,
    ) -> Result<(u64, u64)> {
        let (group, name) = (&current.group, &current.name);
        let base = ParquetFile::open(&prepared.path)?;
        let base_id = base.base_id();
        if let Err(e) = self.keep_base_in_history(group, name, &prepared.path, &base_id) {
            tracing::warn!(table = %name, error = %e, "could not keep the folded table file in its history");
        }
        let parts = moved
            .iter()
            .map(|p| ParquetFile::open(p))
            .collect::<Result<Vec<_>>>()?;
        let file = TableFile::from_segments(base, parts);
        let version = current.version;
        let sidecar = Sidecar {
            version,
            deleted: false,
            row_count: file.row_count(),
            file_size_bytes: file.file_size(),
            table: Some(prepared.meta),
            fingerprint: Some(file.fingerprint()),
        };
        if let Err(e) = write_json(&self.layout.sidecar_path(group, name), &sidecar) {
            tracing::warn!(table = %name, error = %e, "could not write the table's sidecar");
        }
        let rows = file.row_count();
        let handle = TableHandle {
            group: group.clone(),
            name: name.clone(),
            file,
            version,
            entity_key: current.entity_key.clone(),
            timestamp_field: current.timestamp_field.clone(),
        };
        let handle = Arc::new(handle);
        write_lock(&self.tables).insert(name.clone(), Arc::clone(&handle));
        self.mark_readable(name);
        // The folded base and parts stay until the history sweep finds no version reading
        // them: the fold re-points the versions they held to prefixes of the new file.
        let fold = HistoryWrite::Compaction {
            from_base: folded_base.to_owned(),
            parts_folded,
        };
        self.record_version(&handle, Some(current), &fold, 0, 0);
        Ok((version, rows))
    }

    /// Rewrites a table's base file and parts, plus `extra` rows (logical types), as one new
    /// base file; the caller holds the table's write lock.
    pub(super) fn fold_locked(
        &self,
        handle: &TableHandle,
        extra: Option<(&RecordBatch, HistoryWrite)>,
    ) -> Result<SaveOutcome> {
        let (extra, history) = match extra {
            Some((rows, history)) => (Some(rows), history),
            None => (
                None,
                HistoryWrite::Compaction {
                    from_base: history_base(handle.file.base()),
                    parts_folded: handle.file.part_count(),
                },
            ),
        };
        let mut prepared = self.prepare_fold(handle, extra)?;
        prepared.history = history;
        if let Some(remote) = &self.remote {
            let op = if extra.is_none() {
                Op::Compact
            } else {
                Op::Replace
            };
            return self.commit_base(
                remote,
                &handle.group,
                &handle.name,
                prepared,
                op,
                Vec::new(),
            );
        }
        write_table(
            &prepared.path,
            &prepared.stored,
            &prepared.meta,
            self.config.write_settings(),
        )?;
        self.install_save(&handle.group, &handle.name, prepared)
    }

    pub(super) fn prepare_fold(
        &self,
        handle: &TableHandle,
        extra: Option<&RecordBatch>,
    ) -> Result<PreparedSave> {
        let rows = typed::to_logical(&handle.file.read_all(&handle.file.all_columns())?)?;
        let rows = match extra {
            Some(extra) => concat_logical(&rows, extra)?,
            None => rows,
        };
        let declaration = Declaration {
            entity_key: (!handle.entity_key.is_empty()).then(|| handle.entity_key.clone()),
            timestamp_field: handle.timestamp_field.clone(),
            ..Declaration::default()
        };
        self.prepare_save(
            &handle.group,
            &handle.name,
            &rows,
            declaration,
            Some(handle),
            Some(handle.file.stored_schema()),
            extra.is_none(),
        )
    }
}

/// How the history names a base file: its data key on the s3 kind (entries name objects),
/// its id on the local kind (the name of its hard link under `_history/`).
fn history_base(file: &ParquetFile) -> String {
    file.object_key()
        .map_or_else(|| file.base_id(), |key| key.as_ref().to_owned())
}

pub(super) fn unchanged(handle: &TableHandle) -> FoldOutcome {
    let at = (handle.version, handle.file.snapshot_id());
    FoldOutcome {
        version: handle.version,
        rows: handle.file.row_count(),
        parts_folded: 0,
        before: at,
        after: at,
    }
}

/// Whether `fields` have the names and types of `schema`'s, in order.
pub(super) fn same_types(fields: &arrow::datatypes::Fields, schema: &SchemaRef) -> bool {
    fields.len() == schema.fields().len()
        && fields
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
}

/// `schema`'s fields, every one nullable and without schema metadata: a part's values may
/// hold nulls where a file written by another tool declared none, and pandas metadata of the
/// table file does not describe a part.
fn nullable(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The table's rows followed by `extra`'s, both with logical types; a column that holds only
/// nulls on one side takes the other side's type.
fn concat_logical(rows: &RecordBatch, extra: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(rows.num_columns());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(rows.num_columns());
    for (field, column) in rows.schema().fields().iter().zip(rows.columns()) {
        let more = extra.column_by_name(field.name()).ok_or_else(|| {
            StorageError::invalid(
                field.name(),
                None,
                format!("column {:?} is missing", field.name()),
            )
        })?;
        let target = if field.data_type() == &DataType::Null {
            more.data_type().clone()
        } else {
            field.data_type().clone()
        };
        let (a, b) = (cast(column, &target)?, cast(more, &target)?);
        arrays.push(concat(&[a.as_ref(), b.as_ref()])?);
        fields.push(Field::new(field.name(), target, true));
    }
    let options =
        RecordBatchOptions::new().with_row_count(Some(rows.num_rows() + extra.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}
