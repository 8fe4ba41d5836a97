//! History of the s3 kind: the commit entries are the versions (see `history`).
//!
//! FIRST CUT: only the newest entry is read, so only the current version is listed; the
//! s3 kind's full history is being built on its own branch.

use super::super::Storage;
use super::super::error::{Result, StorageError};
use super::super::history::{Content, HistorySweep, Replayed, VersionOp, VersionRecord};
use super::super::table::TableFile;
use super::super::versions::logical_columns;
use super::Remote;
use crate::model::TableName;

impl Storage {
    /// The versions of `name` from its commit entries.
    pub(in crate::storage) fn remote_replayed(
        &self,
        _remote: &Remote,
        name: &TableName,
    ) -> Result<Replayed> {
        let mut replayed = Replayed::default();
        if let Some(current) = self.peek(name) {
            let record = VersionRecord {
                version: current.version,
                op: VersionOp::Replace,
                became_current_ms: super::super::versions::millis(current.file.modified()),
                rows: current.file.row_count(),
                rows_written: 0,
                bytes_written: 0,
                columns: logical_columns(&current.file),
                columns_added: Vec::new(),
                columns_removed: Vec::new(),
                columns_retyped: Vec::new(),
                written_by: None,
                restored_from: None,
                entity_key: current.entity_key.clone(),
                timestamp_field: current.timestamp_field.clone(),
            };
            let content = Content {
                base: String::new(),
                parts: current.file.part_count(),
                prefix_rows: None,
            };
            replayed.versions.push((record, Some(content)));
        }
        Ok(replayed)
    }

    /// Opens a retained content of the s3 kind.
    pub(in crate::storage) fn open_remote_content(
        &self,
        _remote: &Remote,
        name: &TableName,
        _content: &Content,
    ) -> Result<TableFile> {
        Err(StorageError::TableNotFound {
            name: name.to_string(),
            hint: Some("old versions of the s3 kind are not readable yet".into()),
        })
    }

    /// Sweeps the bucket's history by retention.
    pub(in crate::storage) fn sweep_remote_history(
        &self,
        _remote: &Remote,
    ) -> Result<HistorySweep> {
        Ok(HistorySweep::default())
    }

    /// Bytes kept for `name`'s versions other than the current one.
    pub(in crate::storage) fn remote_history_bytes(
        &self,
        _remote: &Remote,
        _name: &TableName,
    ) -> u64 {
        0
    }
}
