//! Reading a table's whole log of commit entries, for its history.
//!
//! Entries are write-once, so each is fetched once per process and kept by seq; a listing
//! costs one LIST of `tables/<name>/log/` and a GET per entry not seen before. Entries the
//! sweep removed drop out of the cache at the next listing, so it stays as long as the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::MutexGuard;

use object_store::path::Path as ObjectPath;

use super::super::error::{Result, StorageError};
use super::super::table::TableFile;
use super::super::versions::logical_columns;
use super::{DataRef, Entry, Op, Remote, store_error};
use crate::model::TableName;
use crate::storage::object::ObjectError;

/// The entries of each table read so far, by seq.
pub(super) type EntryCache = HashMap<TableName, BTreeMap<u64, Entry>>;

impl Remote {
    fn lock_entries(&self) -> MutexGuard<'_, EntryCache> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every entry of `name`'s log, in seq order (one LIST, and a GET per entry not yet
    /// read). An entry written before entries carried history has its rows and columns
    /// counted from its objects' footers once; one whose objects are gone (swept by the
    /// sweep of an older release, which kept only the newest entry's objects) is left out:
    /// it names no content anyone can read.
    pub(super) fn log_entries(&self, name: &TableName) -> Result<Vec<Entry>> {
        let listed = self
            .tree()
            .list(&Self::log_prefix(name))
            .map_err(store_error)?;
        let mut seqs: Vec<(u64, ObjectPath)> = listed
            .into_iter()
            .filter_map(|o| seq_of(&o.location).map(|seq| (seq, o.location)))
            .collect();
        seqs.sort_by_key(|(seq, _)| *seq);
        let known: Vec<u64> = self
            .lock_entries()
            .get(name)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        let mut fetched = Vec::new();
        for (seq, key) in &seqs {
            if known.binary_search(seq).is_ok() {
                continue;
            }
            let bytes = match self.tree().get(key) {
                Ok(bytes) => bytes,
                // Swept between the LIST and the GET: it is no longer part of the log.
                Err(ObjectError::NotFound { .. }) => continue,
                Err(e) => return Err(store_error(e)),
            };
            let mut entry: Entry =
                serde_json::from_slice(&bytes).map_err(|source| StorageError::Metadata {
                    path: key.as_ref().into(),
                    source,
                })?;
            if entry.is_legacy() && !self.fill_legacy(&mut entry)? {
                continue;
            }
            fetched.push(entry);
        }
        let mut cache = self.lock_entries();
        let table = cache.entry(name.clone()).or_default();
        for entry in fetched {
            table.insert(entry.seq, entry);
        }
        let listed: Vec<u64> = seqs.iter().map(|(seq, _)| *seq).collect();
        table.retain(|seq, _| listed.binary_search(seq).is_ok());
        Ok(table.values().cloned().collect())
    }

    /// Counts the rows and columns of an entry written before entries carried them, from
    /// its objects' footers, and dates it by its newest object; false when its objects are
    /// gone. A delete has nothing to count.
    fn fill_legacy(&self, entry: &mut Entry) -> Result<bool> {
        let Some(base) = entry.base.clone() else {
            return Ok(entry.op == Op::Delete);
        };
        let open = |data: &DataRef| match self.open_data(data, None) {
            Ok(file) => Ok(Some(file)),
            // A missing data object reads as an expired version.
            Err(StorageError::VersionExpired { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        let Some(base_file) = open(&base)? else {
            return Ok(false);
        };
        let mut parts = Vec::with_capacity(entry.parts.len());
        for part in &entry.parts {
            let Some(file) = open(part)? else {
                return Ok(false);
            };
            parts.push(file);
        }
        let table = TableFile::from_segments(base_file, parts);
        entry.rows = table.row_count();
        entry.columns = logical_columns(&table);
        entry.committed_ms = std::iter::once(&base)
            .chain(&entry.parts)
            .map(|d| d.written_ms)
            .max()
            .unwrap_or(0);
        Ok(true)
    }

    /// The base object `key` as an entry of `name` names it, with the longest list of parts
    /// any cached entry gives it (the lists of one base's entries are prefixes of each other:
    /// appends add at the end, a fold starts a new base).
    pub(super) fn base_and_parts(
        &self,
        name: &TableName,
        key: &str,
    ) -> Option<(DataRef, Vec<DataRef>)> {
        let cache = self.lock_entries();
        let entries = cache.get(name)?;
        entries
            .values()
            .filter_map(|e| e.base.as_ref().filter(|b| b.key == key).map(|b| (b, e)))
            .max_by_key(|(_, e)| e.parts.len())
            .map(|(base, e)| (base.clone(), e.parts.clone()))
    }
}

/// The seq of a log key (`.../log/<seq>.json`).
pub(super) fn seq_of(key: &ObjectPath) -> Option<u64> {
    key.filename()
        .and_then(|f| f.strip_suffix(".json"))
        .and_then(|s| s.parse().ok())
}
