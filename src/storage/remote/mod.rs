//! The s3 kind: tables as immutable objects published by write-once commit entries, so
//! several featurestore processes can share one bucket (the protocol is in
//! [`crate::storage::object`]'s module doc and in ARCHITECTURE.md).
//!
//! [`Remote`] knows the keys and speaks the protocol: it writes data objects, creates entries
//! (the commit point), keeps the newest entry it has seen of each table, and refreshes the
//! plain copy `features/<group>/<name>.parquet`. The `Storage` operations that use it are in
//! `commit` (saves, appends, folds, deletes) and `follow` (seeing other writers' commits).
//!
//! Keys, relative to `[storage.s3].prefix`:
//! - `tables/<name>/log/<seq, 20 digits>.json`: the entries, write-once;
//! - `tables/<name>/data/<writer>-<n>.parquet`: the data objects (bases and parts), never
//!   rewritten, named by a random per-process writer id so two writers never collide;
//! - `tables/<name>/stats/<version, 20 digits>.json`: each version's statistics, write-once
//!   (see `stats`);
//! - `features/<group>/<name>.parquet`: a plain copy of the latest base, for other tools.

mod adopt;
mod commit;
mod entry;
mod follow;
mod history;
mod log;
mod stats;
mod sweep;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::ObjectMeta;
use object_store::path::Path as ObjectPath;

pub(crate) use entry::{DataRef, Entry, Op};

use super::error::{Result, StorageError};
use super::object::{BlockingTree, ObjectError, ObjectTree, S3Config};
use super::reader::ParquetFile;
use crate::model::{GroupName, TableName};

/// Attempts of one write against other replicas' commits before it answers 503.
pub(super) const COMMIT_ATTEMPTS: usize = 12;

/// The bucket, the protocol's keys and the newest entry seen of each table.
#[derive(Debug)]
pub(super) struct Remote {
    tree: BlockingTree,
    /// This process's id in data keys and entries.
    writer: String,
    next_object: AtomicU64,
    /// The newest entry seen of each table (deletes included, so versions continue).
    heads: Mutex<HashMap<TableName, Entry>>,
    /// Plain copies already found to need no adoption, by table: (size, ETag) of the copy.
    checked: Mutex<HashMap<TableName, (u64, Option<String>)>>,
    /// When this process last swept the bucket's garbage.
    last_sweep: Mutex<Option<std::time::Instant>>,
    /// Every entry read for a table's history, by seq (entries never change).
    entries: Mutex<log::EntryCache>,
    /// Bytes of each table's history, with the seq of the head they were counted at: one
    /// LIST per table after each commit, not per `/metrics` scrape.
    history_bytes: Mutex<HashMap<TableName, (u64, u64)>>,
}

impl Remote {
    /// Connects to the bucket of `config` and checks that it exists and the credentials may
    /// list it; the error names the setting at fault.
    pub(super) fn open(config: &S3Config) -> Result<Self> {
        let store = config
            .build()
            .map_err(|e| StorageError::Unavailable { reason: e.reason() })?;
        let tree = BlockingTree::new(ObjectTree::new(store));
        tree.probe(&config.bucket)
            .map_err(|e| StorageError::Unavailable {
                reason: startup_failure(config, &e),
            })?;
        Ok(Self::over(tree))
    }

    /// A remote over an existing tree (the tests use a local folder).
    pub(super) fn over(tree: BlockingTree) -> Self {
        let mut id = [0u8; 6];
        if getrandom::fill(&mut id).is_err() {
            // Without randomness, the time and pid still separate processes in practice.
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            id[..4].copy_from_slice(&nanos.to_be_bytes());
            id[4..].copy_from_slice(&(std::process::id() as u16).to_be_bytes());
        }
        Self {
            tree,
            writer: id.iter().map(|b| format!("{b:02x}")).collect(),
            next_object: AtomicU64::new(1),
            heads: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(None),
            entries: Mutex::new(HashMap::new()),
            history_bytes: Mutex::new(HashMap::new()),
        }
    }

    /// The store, for `/health` and the registry.
    pub(super) fn tree(&self) -> &BlockingTree {
        &self.tree
    }

    fn log_prefix(name: &TableName) -> ObjectPath {
        ObjectPath::from(format!("tables/{name}/log"))
    }

    fn data_prefix(name: &TableName) -> ObjectPath {
        ObjectPath::from(format!("tables/{name}/data"))
    }

    /// True (and the clock restarted) when the last sweep is `every` old, or there was none.
    fn sweep_due(&self, every: Duration) -> bool {
        let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }

    fn log_key(name: &TableName, seq: u64) -> ObjectPath {
        ObjectPath::from(format!("tables/{name}/log/{seq:020}.json"))
    }

    /// The plain copy of a table's latest content.
    pub(super) fn plain_key(group: &GroupName, name: &TableName) -> ObjectPath {
        ObjectPath::from(format!("features/{group}/{name}.parquet"))
    }

    /// The newest entry seen of `name`, without asking the store.
    pub(super) fn known_head(&self, name: &TableName) -> Option<Entry> {
        self.lock_heads().get(name).cloned()
    }

    fn lock_heads(&self) -> std::sync::MutexGuard<'_, HashMap<TableName, Entry>> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest entry of `name` in the store (one LIST of what follows the known head, and
    /// one GET when something does); `None` when the table has never been written.
    pub(super) fn fetch_head(&self, name: &TableName) -> Result<Option<Entry>> {
        let known = self.known_head(name);
        let prefix = Self::log_prefix(name);
        let listed = match &known {
            Some(head) => self
                .tree
                .list_after(&prefix, &Self::log_key(name, head.seq)),
            None => self.tree.list(&prefix),
        }
        .map_err(store_error)?;
        let Some(newest) = listed
            .iter()
            .filter(|o| o.location.as_ref().ends_with(".json"))
            .max_by(|a, b| a.location.cmp(&b.location))
        else {
            return Ok(known);
        };
        let bytes = self.tree.get(&newest.location).map_err(store_error)?;
        let entry: Entry =
            serde_json::from_slice(&bytes).map_err(|source| StorageError::Metadata {
                path: newest.location.as_ref().into(),
                source,
            })?;
        let mut heads = self.lock_heads();
        let current = heads.get(name).map_or(0, |h| h.seq);
        if entry.seq > current {
            heads.insert(name.clone(), entry.clone());
        }
        Ok(heads.get(name).cloned())
    }

    /// A data key of `name` no writer has used: this process's id and a counter.
    pub(super) fn new_data_key(&self, name: &TableName) -> ObjectPath {
        let n = self.next_object.fetch_add(1, Ordering::Relaxed);
        ObjectPath::from(format!("tables/{name}/data/{}-{n:08}.parquet", self.writer))
    }

    /// Whether the plain copy `object` of `name` was already found to need nothing.
    pub(super) fn checked_copy(&self, name: &TableName, object: &ObjectMeta) -> bool {
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .is_some_and(|seen| *seen == (object.size, object.e_tag.clone()))
    }

    /// Records that the plain copy `object` of `name` needs nothing more.
    pub(super) fn remember_copy(&self, name: &TableName, object: &ObjectMeta) {
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), (object.size, object.e_tag.clone()));
    }

    /// Writes a new data object of `name`; nothing refers to it until an entry names it.
    pub(super) fn put_data(&self, name: &TableName, bytes: Vec<u8>) -> Result<(DataRef, Bytes)> {
        let key = self.new_data_key(name).as_ref().to_owned();
        let bytes = Bytes::from(bytes);
        self.tree
            .put(&ObjectPath::from(key.as_str()), bytes.clone())
            .map_err(store_error)?;
        let written_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let size = bytes.len() as u64;
        Ok((
            DataRef {
                key,
                size,
                written_ms,
            },
            bytes,
        ))
    }

    /// Removes a data object no entry names (one that lost a commit race). Best effort:
    /// the sweep would find it later.
    pub(super) fn drop_data(&self, data: &DataRef) {
        let _ = self.tree.delete(&ObjectPath::from(data.key.as_str()));
    }

    /// Creates the entry after the known head of `name`: the commit point. `None` when
    /// another writer created that entry first; the caller refreshes and retries.
    pub(super) fn commit(&self, name: &TableName, draft: Entry) -> Result<Option<Entry>> {
        let seq = self.known_head(name).map_or(0, |h| h.seq) + 1;
        let entry = Entry {
            seq,
            writer: self.writer.clone(),
            ..draft
        };
        let body = serde_json::to_vec(&entry).map_err(|source| StorageError::Metadata {
            path: Self::log_key(name, seq).as_ref().into(),
            source,
        })?;
        match self
            .tree
            .put_if_absent(&Self::log_key(name, seq), Bytes::from(body))
        {
            Ok(()) => {
                let mut heads = self.lock_heads();
                if heads.get(name).is_none_or(|h| h.seq < seq) {
                    heads.insert(name.clone(), entry.clone());
                }
                Ok(Some(entry))
            }
            Err(ObjectError::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Makes `features/<group>/<name>.parquet` a copy of the newest base, for tools that read
    /// the plain tree. Two writers may copy in either order, so after copying, a writer that
    /// finds a newer entry copies again: the last to check copies the newest. A failure only
    /// delays the copy (the committed table is unaffected); it is logged.
    pub(super) fn publish_plain(&self, name: &TableName) {
        for _ in 0..COMMIT_ATTEMPTS {
            let Some(head) = self.known_head(name) else {
                return;
            };
            let Ok(group) = head.group.parse::<GroupName>() else {
                return;
            };
            let target = Self::plain_key(&group, name);
            let outcome = match &head.base {
                Some(base) if head.is_live() => self
                    .tree
                    .copy(&ObjectPath::from(base.key.as_str()), &target),
                _ => self.tree.delete(&target),
            };
            if let Err(e) = outcome {
                tracing::warn!(table = %name, error = %e, "could not refresh the table's plain copy");
                return;
            }
            match self.fetch_head(name) {
                Ok(Some(newer)) if newer.seq > head.seq && newer.base != head.base => continue,
                _ => return,
            }
        }
    }

    /// Names of the tables that have a log in the store (one LIST).
    pub(super) fn table_names(&self) -> Result<Vec<TableName>> {
        Ok(self
            .tree
            .list_dirs(&ObjectPath::from("tables"))
            .map_err(store_error)?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect())
    }

    /// Opens a data object named by an entry; `written` when this process just wrote it.
    pub(super) fn open_data(&self, data: &DataRef, written: Option<&[u8]>) -> Result<ParquetFile> {
        let modified =
            UNIX_EPOCH + Duration::from_millis(u64::try_from(data.written_ms).unwrap_or(0));
        ParquetFile::open_object(
            &self.tree,
            &ObjectPath::from(data.key.as_str()),
            data.size,
            modified,
            written,
        )
    }
}

/// The one line a process that cannot start on the bucket prints: the setting at fault and
/// what the store said, without the store's XML body (nor, ever, a credential).
fn startup_failure(config: &S3Config, error: &ObjectError) -> String {
    let endpoint = config
        .endpoint
        .clone()
        .unwrap_or_else(|| "AWS_ENDPOINT_URL or the AWS default".to_owned());
    match error {
        ObjectError::Denied { .. } => format!(
            "access to bucket {:?} was refused: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and storage.s3.bucket",
            config.bucket
        ),
        ObjectError::Config { setting, reason } => format!("storage.s3.{setting}: {reason}"),
        other => {
            let text = other.reason();
            let first = text.lines().next().unwrap_or_default();
            format!(
                "cannot reach the S3 endpoint {endpoint} (storage.s3.endpoint, storage.s3.region): {first}"
            )
        }
    }
}

/// A failed store call as the storage layer reports it: retryable (503), never a 500 or a
/// "not found" of the table, whatever the store answered.
pub(super) fn store_error(error: ObjectError) -> StorageError {
    StorageError::Unavailable {
        reason: error.reason(),
    }
}
