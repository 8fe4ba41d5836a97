//! A table name in two group folders: another tool wrote `misc/dup.parquet` while
//! `user/dup.parquet` exists. Names are unique across groups, so one file is served — the one
//! the catalog already had, else the one a lookup would try first — and the duplicate is
//! remembered so that it is logged once (not on every rescan), reported by `/health`, and
//! requests naming the other location get a conflict naming both files instead of a
//! "not found" that depends on which file a rescan happened to see first.

use std::collections::HashMap;

use super::{Storage, StorageError, TableHandle, guard, read_lock};
use crate::model::{GroupName, TableName, infer_group};

/// Names found in several groups: the group served and the groups ignored.
pub(super) type Duplicates = HashMap<TableName, (GroupName, Vec<GroupName>)>;

/// A table name found in more than one group folder, as `/health` reports it. Names are unique
/// across groups, so only one of the files is served: the one the catalog held first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateTable {
    /// The table's name.
    pub name: String,
    /// The file served, relative to the data root.
    pub served: String,
    /// The other files of that name, not served, relative to the data root.
    pub ignored: Vec<String>,
}

impl Storage {
    /// Table names found in several groups at the last rescan, by name.
    pub fn duplicates(&self) -> Vec<DuplicateTable> {
        let mut all: Vec<DuplicateTable> = guard(&self.duplicates)
            .iter()
            .map(|(name, (served, ignored))| DuplicateTable {
                name: name.to_string(),
                served: self.layout.relative_table_path(served, name),
                ignored: ignored
                    .iter()
                    .map(|g| self.layout.relative_table_path(g, name))
                    .collect(),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The error for a request naming `group` when the table is served from another group:
    /// a duplicate conflict when a file of that name really is in `group`, else not found.
    pub(super) fn other_group_error(
        &self,
        group: &GroupName,
        handle: &TableHandle,
    ) -> StorageError {
        let name = &handle.name;
        let duplicate = guard(&self.duplicates)
            .get(name)
            .is_some_and(|(_, ignored)| ignored.contains(group));
        if duplicate || self.layout.table_path(group, name).is_file() {
            StorageError::DuplicateTable {
                name: name.to_string(),
                served: self.layout.relative_table_path(&handle.group, name),
                ignored: self.layout.relative_table_path(group, name),
            }
        } else {
            StorageError::TableNotFound {
                name: name.to_string(),
                hint: Some(format!("it is in group {:?}", handle.group.as_str())),
            }
        }
    }

    /// Of the groups holding a file named `name`, the one to serve: the catalog's, else the
    /// inferred group, else the first by name (`groups` is sorted).
    pub(super) fn served_group(&self, name: &TableName, groups: &[GroupName]) -> Option<GroupName> {
        let current = read_lock(&self.tables).get(name).map(|h| h.group.clone());
        let inferred = infer_group(name.as_str());
        current
            .filter(|g| groups.contains(g))
            .or_else(|| groups.iter().find(|g| g.as_str() == inferred).cloned())
            .or_else(|| groups.first().cloned())
    }

    /// Keeps the duplicates found by a rescan, logging each one that is new or changed.
    pub(super) fn record_duplicates(&self, now: Duplicates) {
        let mut known = guard(&self.duplicates);
        for (name, (served, ignored)) in &now {
            if known.get(name) != Some(&(served.clone(), ignored.clone())) {
                tracing::warn!(
                    table = %name,
                    served = %self.layout.relative_table_path(served, name),
                    ignored = ?ignored.iter().map(|g| self.layout.relative_table_path(g, name)).collect::<Vec<_>>(),
                    "table name found in two groups; serving the file the catalog had first until one is removed or renamed"
                );
            }
        }
        *known = now;
    }
}
