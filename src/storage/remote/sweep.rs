//! Garbage of the s3 kind: data objects no recent entry names (replaced bases, folded parts,
//! objects of writers that lost a race or crashed before committing) and old log entries.
//!
//! Nothing younger than [`GRACE`] is touched, counted from when it stopped mattering: the
//! "stable" entry is the newest one committed more than `GRACE` ago, so every snapshot a
//! reader may still hold is the stable one or newer. Deleted: data objects older than `GRACE`
//! that neither the stable entry nor the newest one names (a writer puts its object
//! moments before its entry, so an object older than `GRACE` and unnamed will never be
//! named), and entries more than [`KEEP_ENTRIES`] below the stable one (a writer always lists
//! the log before it commits, so no writer can aim at a swept slot). Every replica runs it
//! every [`SWEEP_EVERY`]; it is idempotent, so two replicas sweeping at once only repeat
//! deletes.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;

use super::super::Storage;
use super::super::error::Result;
use super::{Entry, Remote, store_error};
use crate::model::TableName;

/// How long an object must have been unreferenced (or an entry superseded) before it goes.
pub(super) const GRACE: Duration = Duration::from_secs(3600);
/// How often a process sweeps.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Entries kept below the stable one, for people reading the log.
const KEEP_ENTRIES: u64 = 64;

impl Storage {
    /// Sweeps the garbage of every table in the bucket that has been garbage for `grace`
    /// (the server uses [`GRACE`], an hour); returns how many objects it deleted. Nothing
    /// happens on the local kind, whose writes clean up after themselves.
    pub fn sweep_garbage(&self, grace: Duration) -> Result<usize> {
        let Some(remote) = &self.remote else {
            return Ok(0);
        };
        let mut deleted = 0;
        for name in remote.table_names()? {
            deleted += self.sweep_table(remote, &name, grace)?;
        }
        Ok(deleted)
    }

    /// Sweeps `name`'s garbage older than `grace`; returns how many objects it deleted.
    fn sweep_table(&self, remote: &Remote, name: &TableName, grace: Duration) -> Result<usize> {
        let tree = remote.tree();
        let cutoff: DateTime<Utc> = (SystemTime::now() - grace).into();
        let entries = tree.list(&Remote::log_prefix(name)).map_err(store_error)?;
        let Some(stable) = entries.iter().rev().find(|o| o.last_modified <= cutoff) else {
            return Ok(0);
        };
        let read = |key: &ObjectPath| -> Result<Entry> {
            let bytes = tree.get(key).map_err(store_error)?;
            serde_json::from_slice(&bytes).map_err(|source| super::super::StorageError::Metadata {
                path: key.as_ref().into(),
                source,
            })
        };
        let stable = read(&stable.location)?;
        let mut named: HashSet<String> = HashSet::new();
        let newest = remote.fetch_head(name)?;
        for entry in std::iter::once(&stable).chain(newest.iter()) {
            named.extend(entry.base.iter().chain(&entry.parts).map(|d| d.key.clone()));
        }
        let mut deleted = 0;
        for object in tree.list(&Remote::data_prefix(name)).map_err(store_error)? {
            if object.last_modified <= cutoff && !named.contains(object.location.as_ref()) {
                tree.delete(&object.location).map_err(store_error)?;
                deleted += 1;
            }
        }
        let floor = stable.seq.saturating_sub(KEEP_ENTRIES);
        for object in &entries {
            let seq = object
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|s| s.parse::<u64>().ok());
            if seq.is_some_and(|s| s < floor) && object.last_modified <= cutoff {
                tree.delete(&object.location).map_err(store_error)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Sweeps every table when the last sweep of this process is [`SWEEP_EVERY`] old.
    pub(in crate::storage) fn sweep_if_due(&self, remote: &Remote, names: &[TableName]) {
        if !remote.sweep_due(SWEEP_EVERY) {
            return;
        }
        let mut deleted = 0;
        for name in names {
            match self.sweep_table(remote, name, GRACE) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::debug!(table = %name, error = %e, "cannot sweep the table this round")
                }
            }
        }
        if deleted > 0 {
            tracing::info!(
                objects = deleted,
                "swept unreferenced objects and old entries from the bucket"
            );
        }
    }
}
