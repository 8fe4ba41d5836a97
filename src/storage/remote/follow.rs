//! Following the bucket: bringing the catalog in line with the newest commit entry of each
//! table, whoever wrote it (this process, another replica, the CLI).
//!
//! A table's catalog handle is replaced only under its write lock, so a refresh can never
//! put back a state older than one this process just committed; data objects already open
//! are reused, so an append seen from another replica costs one LIST, one GET of the entry
//! and one ranged GET for the new part's footer.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::super::catalog::TableHandle;
use super::super::error::{Result, StorageError};
use super::super::reader::ParquetFile;
use super::super::table::TableFile;
use super::super::{Storage, write_lock};
use super::{DataRef, Entry, Remote};
use crate::model::{GroupName, TableName};

impl Storage {
    /// The catalog after the newest entry of `name` in the store; true when it changed. The
    /// caller holds the table's write lock.
    pub(in crate::storage) fn follow_locked(
        &self,
        remote: &Remote,
        name: &TableName,
    ) -> Result<bool> {
        let head = remote.fetch_head(name)?;
        let current = self.peek(name);
        let Some(entry) = head.filter(Entry::is_live) else {
            if current.is_some() {
                write_lock(&self.tables).remove(name);
                self.mark_readable(name);
                return Ok(true);
            }
            return Ok(false);
        };
        if current.as_deref().is_some_and(|h| shows(h, &entry)) {
            return Ok(false);
        }
        match self.open_entry(remote, name, &entry, current.as_deref()) {
            Ok(handle) => {
                write_lock(&self.tables).insert(name.clone(), Arc::new(handle));
                self.mark_readable(name);
                Ok(true)
            }
            Err(e @ StorageError::Unavailable { .. }) => Err(e),
            Err(e) => {
                if let Ok(group) = entry.group.parse::<GroupName>() {
                    self.mark_unreadable(&group, name, &e);
                }
                Err(e)
            }
        }
    }

    /// [`Self::follow_locked`], taking the lock.
    pub(in crate::storage) fn follow(&self, remote: &Remote, name: &TableName) -> Result<bool> {
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.follow_locked(remote, name)
    }

    /// One polling round: every table with a log in the bucket, and every table in the
    /// catalog, brought in line; returns the names that changed. A store that cannot be
    /// reached changes nothing (the catalog keeps serving what it has).
    pub(in crate::storage) fn follow_all(&self, remote: &Remote) -> Vec<String> {
        let listed = match remote.table_names() {
            Ok(names) => names,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the bucket's tables this round");
                return Vec::new();
            }
        };
        let mut names: BTreeSet<TableName> = listed.iter().cloned().collect();
        names.extend(self.list().iter().map(|h| h.name.clone()));
        let mut changed = Vec::new();
        for name in names {
            match self.follow(remote, &name) {
                Ok(true) => changed.push(name.to_string()),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(table = %name, error = %e, "cannot follow the table this round")
                }
            }
        }
        changed.extend(self.adopt_plain_copies(remote));
        self.sweep_if_due(remote, &listed);
        changed
    }

    /// Opens the state `entry` describes, reusing the objects `current` already has open.
    fn open_entry(
        &self,
        remote: &Remote,
        name: &TableName,
        entry: &Entry,
        current: Option<&TableHandle>,
    ) -> Result<TableHandle> {
        let open: HashMap<&str, &ParquetFile> = current
            .map(|h| {
                std::iter::once(h.file.base())
                    .chain(h.file.parts())
                    .filter_map(|f| f.object_key().map(|k| (k.as_ref(), f)))
                    .collect()
            })
            .unwrap_or_default();
        let segment = |data: &DataRef| match open.get(data.key.as_str()) {
            Some(file) => Ok((*file).clone()),
            None => remote.open_data(data, None),
        };
        let Some(base) = &entry.base else {
            return Err(StorageError::TableNotFound {
                name: name.to_string(),
                hint: None,
            });
        };
        let base = segment(base)?;
        let parts = entry
            .parts
            .iter()
            .map(segment)
            .collect::<Result<Vec<_>>>()?;
        let group = entry
            .group
            .parse()
            .map_err(|_| StorageError::InvalidRecords {
                column: None,
                row: None,
                message: format!(
                    "the commit entry of {name:?} names an invalid group {:?}",
                    entry.group
                ),
            })?;
        Ok(TableHandle {
            group,
            name: name.clone(),
            file: TableFile::from_segments(base, parts),
            version: entry.version,
            entity_key: entry.entity_key.clone(),
            timestamp_field: entry.timestamp_field.clone(),
        })
    }
}

/// Whether `handle` is the state `entry` describes (same version, group and objects).
fn shows(handle: &TableHandle, entry: &Entry) -> bool {
    let keys = std::iter::once(handle.file.base())
        .chain(handle.file.parts())
        .map(|f| f.object_key().map(|k| k.as_ref().to_owned()));
    let wanted = entry
        .base
        .iter()
        .chain(&entry.parts)
        .map(|d| Some(d.key.clone()));
    handle.version == entry.version && handle.group.as_str() == entry.group && keys.eq(wanted)
}

/// The reference an entry keeps to an open data object.
pub(super) fn data_ref(file: &ParquetFile) -> Option<DataRef> {
    let key = file.object_key()?;
    let written_ms = file
        .modified()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Some(DataRef {
        key: key.as_ref().to_owned(),
        size: file.file_size(),
        written_ms,
    })
}
