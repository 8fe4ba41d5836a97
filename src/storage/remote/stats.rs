//! The s3 kind's statistics objects: `tables/<name>/stats/<version, 20 digits>.json`, one
//! write-once object per version beside the table's log and data. Only the writer whose
//! commit made the version (or whoever first computes the statistics of a version that has
//! none) creates it; a second creation of the same version loses harmlessly, since both hold
//! statistics of the same rows.

use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use super::super::error::Result;
use super::{Remote, store_error};
use crate::model::TableName;
use crate::storage::object::ObjectError;

impl Remote {
    fn stats_prefix(name: &TableName) -> ObjectPath {
        ObjectPath::from(format!("tables/{name}/stats"))
    }

    fn stats_key(name: &TableName, version: u64) -> ObjectPath {
        ObjectPath::from(format!("tables/{name}/stats/{version:020}.json"))
    }

    /// Creates the statistics object of `version`; one already there is kept.
    pub(in crate::storage) fn put_stats(
        &self,
        name: &TableName,
        version: u64,
        bytes: Vec<u8>,
    ) -> Result<()> {
        match self
            .tree
            .put_if_absent(&Self::stats_key(name, version), Bytes::from(bytes))
        {
            Ok(()) | Err(ObjectError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The statistics object of `version`, if there is one.
    pub(in crate::storage) fn get_stats(
        &self,
        name: &TableName,
        version: u64,
    ) -> Result<Option<Bytes>> {
        match self.tree.get(&Self::stats_key(name, version)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(ObjectError::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Deletes the statistics objects of `name` whose version `keep` refuses; returns how
    /// many went.
    pub(in crate::storage) fn sweep_stats(
        &self,
        name: &TableName,
        keep: impl Fn(u64) -> bool,
    ) -> Result<usize> {
        let mut deleted = 0;
        for object in self
            .tree
            .list(&Self::stats_prefix(name))
            .map_err(store_error)?
        {
            let Some(version) = object
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                continue;
            };
            if keep(version) {
                continue;
            }
            match self.tree.delete(&object.location) {
                Ok(()) | Err(ObjectError::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(deleted)
    }
}
