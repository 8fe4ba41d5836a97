//! Tables written into the bucket by other tools: a Parquet file put at
//! `features/<group>/<name>.parquet` by pandas, Spark or `aws s3 cp` becomes a commit, as a
//! file dropped into the local tree is picked up by the watcher.
//!
//! Each polling round lists `features/` once and compares each plain copy with the newest
//! entry of its table:
//! - no entry (a new table), or a copy whose footer is not one featurestore wrote: another
//!   tool wrote it. It is copied to a fresh data key (the plain copy may be overwritten again
//!   at any time, a data object never is) and committed as a replace with the next version.
//! - a copy featurestore wrote, of an older version than the newest entry's: a writer's
//!   refresh of the copy landed after a newer one (they race); it is refreshed again.
//! - an entry whose table has no copy: the copy is restored. Deleting a table is done with
//!   `DELETE /features/{group}/{name}`; removing its copy by hand is undone, because a copy
//!   missing for a moment is also what a writer between its commit and its copy leaves.

use std::collections::HashMap;

use object_store::ObjectMeta;
use object_store::path::Path as ObjectPath;

use super::super::Storage;
use super::super::catalog::keys_of;
use super::super::error::Result;
use super::super::history::VersionOp;
use super::super::table::TableFile;
use super::super::versions::logical_columns;
use super::{DataRef, Entry, Op, Remote, store_error};
use crate::model::{GroupName, TableName};

impl Storage {
    /// One round of comparing the plain copies with the entries; returns the tables adopted.
    pub(in crate::storage) fn adopt_plain_copies(&self, remote: &Remote) -> Vec<String> {
        let listed = match remote.tree().list(&ObjectPath::from("features")) {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the bucket's plain copies this round");
                return Vec::new();
            }
        };
        let mut copies: HashMap<TableName, (GroupName, ObjectMeta)> = HashMap::new();
        for object in listed {
            let parts: Vec<&str> = object.location.as_ref().split('/').collect();
            let [_, group, file] = parts[..] else {
                continue;
            };
            let (Ok(group), Some(Ok(name))) = (
                group.parse::<GroupName>(),
                file.strip_suffix(".parquet").map(str::parse::<TableName>),
            ) else {
                continue;
            };
            copies.insert(name, (group, object));
        }
        let mut adopted = Vec::new();
        for (name, (group, object)) in &copies {
            match self.reconcile_copy(remote, name, group, object) {
                Ok(true) => adopted.push(name.to_string()),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(table = %name, error = %e, "cannot reconcile the table's plain copy this round")
                }
            }
        }
        for name in self.list().iter().map(|h| h.name.clone()) {
            if !copies.contains_key(&name) && remote.known_head(&name).is_some_and(|h| h.is_live())
            {
                remote.publish_plain(&name);
            }
        }
        adopted
    }

    /// Decides what the plain copy `object` of `name` is (see the module doc) and acts;
    /// true when it was adopted as a new version.
    fn reconcile_copy(
        &self,
        remote: &Remote,
        name: &TableName,
        group: &GroupName,
        object: &ObjectMeta,
    ) -> Result<bool> {
        let head = remote.known_head(name).filter(Entry::is_live);
        if let Some(base) = head.as_ref().and_then(|h| h.base.as_ref())
            && base.size == object.size
            && head.as_ref().is_some_and(|h| h.group == group.as_str())
        {
            return Ok(false);
        }
        if remote.checked_copy(name, object) {
            return Ok(false);
        }
        let footer = remote.open_data(
            &DataRef {
                key: object.location.as_ref().to_owned(),
                size: object.size,
                written_ms: object.last_modified.timestamp_millis(),
            },
            None,
        )?;
        let ours = footer.meta().map(|m| m.version);
        if let (Some(written), Some(head)) = (ours, &head)
            && written <= head.version
            && head.group == group.as_str()
        {
            remote.publish_plain(name);
            remote.remember_copy(name, object);
            return Ok(false);
        }
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let newest = remote.fetch_head(name)?;
        if newest.as_ref().map(|h| h.seq) != head.as_ref().map(|h| h.seq)
            && newest.as_ref().is_some_and(Entry::is_live)
        {
            // A commit landed meanwhile; the next round decides again.
            return Ok(false);
        }
        let key = remote.new_data_key(name);
        remote
            .tree()
            .copy(&object.location, &key)
            .map_err(store_error)?;
        let copied = remote.tree().head(&key).map_err(store_error)?;
        let data = DataRef {
            key: key.as_ref().to_owned(),
            size: copied.size,
            written_ms: copied.last_modified.timestamp_millis(),
        };
        let file = remote.open_data(&data, None)?;
        let (entity_key, timestamp_field) = keys_of(file.meta(), file.schema());
        let draft = Entry {
            base: Some(data.clone()),
            entity_key,
            timestamp_field,
            version_op: Some(VersionOp::External),
            committed_ms: self.now_ms(),
            rows: file.row_count(),
            rows_written: file.row_count(),
            bytes_written: data.size,
            columns: logical_columns(&TableFile::from_segments(file.clone(), Vec::new())),
            ..Entry::draft(
                Op::Replace,
                newest.as_ref().map_or(0, |h| h.version) + 1,
                group.to_string(),
            )
        };
        if remote.commit(name, draft)?.is_none() {
            remote.drop_data(&data);
            return Ok(false);
        }
        remote.remember_copy(name, object);
        self.follow_locked(remote, name)?;
        tracing::info!(table = %name, group = %group, "adopted a table file another tool wrote into the bucket");
        Ok(true)
    }
}
