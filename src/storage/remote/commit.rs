//! Writes of the s3 kind: every save, append, fold and delete ends in one commit entry.
//!
//! Order, for each: the data object is put under a fresh key (invisible: nothing names it),
//! then the entry after the newest one this process has seen is created write-once — the
//! commit point, after which the write is acknowledged — then the catalog takes the new
//! state, and last the plain copy is refreshed. A writer that loses the race for the entry
//! deletes its data object and answers [`StorageError::CommitContended`]; the public
//! operations retry on that (after refreshing from the bucket) a bounded number of times, so
//! an acknowledged append is always on top of every commit before it, and a replace is last
//! writer wins with strictly increasing versions.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;

use super::super::catalog::TableHandle;
use super::super::error::{Result, StorageError};
use super::super::fold::{FoldOutcome, same_types, unchanged};
use super::super::history::VersionOp;
use super::super::meta::TableMeta;
use super::super::save::{PreparedSave, SaveOutcome};
use super::super::table::TableFile;
use super::super::versions::{HistoryWrite, logical_columns};
use super::super::writer::encode_table;
use super::super::{Storage, write_lock};
use super::follow::data_ref;
use super::{DataRef, Entry, Op, Remote};
use crate::model::{GroupName, TableName};

impl Storage {
    /// Commits `prepared` as the table's new base object, followed by `carried` parts (a fold
    /// carries the parts pushed while it ran). `op` is `Replace`, or `Compact` for a fold
    /// that changes no row. The caller holds the table's write lock.
    pub(in crate::storage) fn commit_base(
        &self,
        remote: &Remote,
        group: &GroupName,
        name: &TableName,
        prepared: PreparedSave,
        op: Op,
        carried: Vec<super::super::reader::ParquetFile>,
    ) -> Result<SaveOutcome> {
        let bytes = encode_table(
            Path::new(name.as_str()),
            &prepared.stored,
            &prepared.meta,
            self.config.write_settings(),
        )?;
        let (data, bytes) = remote.put_data(name, bytes)?;
        let carried_rows: u64 = carried.iter().map(|p| p.row_count()).sum();
        let mut draft = Entry {
            base: Some(data.clone()),
            parts: carried.iter().filter_map(data_ref).collect(),
            entity_key: prepared.meta.entity_key.clone(),
            timestamp_field: prepared.meta.timestamp_field.clone(),
            committed_ms: self.now_ms(),
            rows: prepared.stored.num_rows() as u64 + carried_rows,
            bytes_written: data.size,
            columns: prepared.meta.columns.clone(),
            ..Entry::draft(op, prepared.meta.version, group.to_string())
        };
        match &prepared.history {
            HistoryWrite::Version {
                op,
                written_by,
                restored_from,
            } => {
                draft.version_op = Some(*op);
                draft.written_by = written_by.clone();
                draft.restored_from = *restored_from;
                draft.rows_written = prepared.stored.num_rows() as u64;
            }
            HistoryWrite::Compaction {
                from_base,
                parts_folded,
            } => {
                draft.from_base = Some(from_base.clone());
                draft.parts_folded = Some(*parts_folded);
            }
        }
        commit_or_drop(remote, name, draft, &data)?;
        let base = remote.open_data(&data, Some(&bytes))?;
        let file = TableFile::from_segments(base, carried);
        let outcome = SaveOutcome {
            created: prepared.created,
            version: prepared.meta.version,
            rows: file.row_count(),
            relative_path: self.layout.relative_table_path(group, name),
            entity_key: prepared.meta.entity_key.clone(),
            timestamp_field: prepared.meta.timestamp_field.clone(),
        };
        let handle = TableHandle {
            group: group.clone(),
            name: name.clone(),
            file,
            version: prepared.meta.version,
            entity_key: prepared.meta.entity_key,
            timestamp_field: prepared.meta.timestamp_field,
        };
        write_lock(&self.tables).insert(name.clone(), Arc::new(handle));
        self.mark_readable(name);
        remote.publish_plain(name);
        Ok(outcome)
    }

    /// Commits `stored` (rows with the table's stored types, described by `meta`) as a new
    /// part after `current`'s. The caller holds the table's write lock and has just followed
    /// the bucket, so `current` is the newest state it knows.
    pub(in crate::storage) fn commit_part(
        &self,
        remote: &Remote,
        current: &TableHandle,
        stored: &RecordBatch,
        meta: TableMeta,
        written_by: Option<String>,
    ) -> Result<Arc<TableHandle>> {
        let name = &current.name;
        let bytes = encode_table(
            Path::new(name.as_str()),
            stored,
            &meta,
            self.config.write_settings(),
        )?;
        let (data, bytes) = remote.put_data(name, bytes)?;
        let mut parts: Vec<_> = current.file.parts().iter().filter_map(data_ref).collect();
        parts.push(data.clone());
        let draft = Entry {
            base: data_ref(current.file.base()),
            parts,
            entity_key: current.entity_key.clone(),
            timestamp_field: current.timestamp_field.clone(),
            version_op: Some(VersionOp::Append),
            committed_ms: self.now_ms(),
            rows: current.file.row_count() + stored.num_rows() as u64,
            rows_written: stored.num_rows() as u64,
            bytes_written: data.size,
            columns: logical_columns(&current.file),
            written_by,
            ..Entry::draft(Op::Append, meta.version, current.group.to_string())
        };
        commit_or_drop(remote, name, draft, &data)?;
        let part = remote.open_data(&data, Some(&bytes))?;
        let handle = Arc::new(TableHandle {
            group: current.group.clone(),
            name: name.clone(),
            file: current.file.with_part(part),
            version: meta.version,
            entity_key: current.entity_key.clone(),
            timestamp_field: current.timestamp_field.clone(),
        });
        write_lock(&self.tables).insert(name.clone(), Arc::clone(&handle));
        Ok(handle)
    }

    /// Commits the deletion of `handle`'s table as a version of its own (so a re-created
    /// table continues after it, and the deletion shows in the history); returns the version
    /// the table had. The caller holds the table's write lock.
    pub(in crate::storage) fn commit_delete(
        &self,
        remote: &Remote,
        handle: &TableHandle,
        written_by: Option<String>,
    ) -> Result<u64> {
        let deletion = handle.version.max(self.latest_version(&handle.name)) + 1;
        let draft = Entry {
            entity_key: handle.entity_key.clone(),
            timestamp_field: handle.timestamp_field.clone(),
            version_op: Some(VersionOp::Delete),
            committed_ms: self.now_ms(),
            written_by,
            ..Entry::draft(Op::Delete, deletion, handle.group.to_string())
        };
        if remote.commit(&handle.name, draft)?.is_none() {
            return Err(contended(&handle.name));
        }
        write_lock(&self.tables).remove(&handle.name);
        self.mark_readable(&handle.name);
        remote.publish_plain(&handle.name);
        Ok(handle.version)
    }

    /// The s3 kind's fold: the new base is prepared and uploaded outside the write lock from
    /// a snapshot; under the lock, it is committed only if the table still has that base and
    /// those parts first (parts pushed meanwhile are carried over). A replace, or another
    /// replica's fold, that landed meanwhile makes it fold what is there now instead.
    pub(in crate::storage) fn fold_remote(
        &self,
        remote: &Remote,
        group: Option<&GroupName>,
        name: &TableName,
    ) -> Result<FoldOutcome> {
        self.follow(remote, name)?;
        let snapshot = match group {
            Some(group) => self.get_in_group(group, name)?,
            None => self.get(name)?,
        };
        if snapshot.file.part_count() == 0 {
            return Ok(unchanged(&snapshot));
        }
        let started = Instant::now();
        let prepared = self.prepare_fold(&snapshot, None)?;
        let bytes = encode_table(
            Path::new(name.as_str()),
            &prepared.stored,
            &prepared.meta,
            self.config.write_settings(),
        )?;
        let kept_types = same_types(
            prepared.stored.schema().fields(),
            snapshot.file.stored_schema(),
        );
        let (data, bytes) = remote.put_data(name, bytes)?;
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let followed = self.follow_locked(remote, name);
        let current = match followed.and_then(|_| {
            self.peek(name)
                .filter(|c| c.group == snapshot.group)
                .ok_or_else(|| StorageError::TableNotFound {
                    name: name.to_string(),
                    hint: Some("it was deleted while its parts were being folded".into()),
                })
        }) {
            Ok(current) => current,
            Err(e) => {
                remote.drop_data(&data);
                return Err(e);
            }
        };
        let folded = snapshot.file.part_count();
        let keys = |h: &TableHandle| -> Vec<Option<String>> {
            std::iter::once(h.file.base())
                .chain(h.file.parts())
                .map(|f| f.object_key().map(|k| k.as_ref().to_owned()))
                .collect()
        };
        let (now, then) = (keys(&current), keys(&snapshot));
        let same_start = now.len() >= then.len() && now[..then.len()] == then[..];
        let late = current.file.parts()[folded.min(current.file.part_count())..].to_vec();
        if !(same_start && (late.is_empty() || kept_types)) {
            remote.drop_data(&data);
            if current.file.part_count() == 0 {
                return Ok(unchanged(&current));
            }
            let saved = self.fold_locked(&current, None)?;
            return Ok(FoldOutcome {
                version: saved.version,
                rows: saved.rows,
                parts_folded: current.file.part_count(),
                before: (current.version, current.file.snapshot_id()),
                after: self
                    .peek(name)
                    .map_or((saved.version, 0), |h| (h.version, h.file.snapshot_id())),
            });
        }
        let draft = Entry {
            base: Some(data.clone()),
            parts: late.iter().filter_map(data_ref).collect(),
            entity_key: current.entity_key.clone(),
            timestamp_field: current.timestamp_field.clone(),
            committed_ms: self.now_ms(),
            rows: current.file.row_count(),
            bytes_written: data.size,
            columns: logical_columns(&current.file),
            from_base: data_ref(snapshot.file.base()).map(|d| d.key),
            parts_folded: Some(folded),
            ..Entry::draft(Op::Compact, current.version, current.group.to_string())
        };
        commit_or_drop(remote, name, draft, &data)?;
        let base = remote.open_data(&data, Some(&bytes))?;
        let carried = late.len();
        let handle = Arc::new(TableHandle {
            group: current.group.clone(),
            name: name.clone(),
            file: TableFile::from_segments(base, late),
            version: current.version,
            entity_key: current.entity_key.clone(),
            timestamp_field: current.timestamp_field.clone(),
        });
        let rows = handle.file.row_count();
        let after = (handle.version, handle.file.snapshot_id());
        write_lock(&self.tables).insert(name.clone(), Arc::clone(&handle));
        self.mark_readable(name);
        remote.publish_plain(name);
        tracing::info!(table = %name, rows, parts = folded, carried, millis = started.elapsed().as_millis() as u64, "folded pushed parts into a new base object");
        Ok(FoldOutcome {
            version: current.version,
            rows,
            parts_folded: folded,
            before: (current.version, current.file.snapshot_id()),
            after,
        })
    }
}

/// Commits `draft`, whose new object is `data`; when another writer committed first, the
/// object is deleted (nothing will ever name it) and the write is contended.
fn commit_or_drop(remote: &Remote, name: &TableName, draft: Entry, data: &DataRef) -> Result<()> {
    if remote.commit(name, draft)?.is_none() {
        remote.drop_data(data);
        return Err(contended(name));
    }
    Ok(())
}

fn contended(name: &TableName) -> StorageError {
    StorageError::CommitContended {
        name: name.to_string(),
    }
}
