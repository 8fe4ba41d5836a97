//! Writes to one table from several processes on one local data root — a server and a
//! `featurestore demo`, or two CLIs — are serialised like writes inside one process.
//!
//! Inside a process a per-name mutex orders a table's writes; across processes nothing did,
//! so two writers could both read version N from the sidecar and both write N + 1 (two
//! versions with one number, one of them lost from the history), or append part `k` of the
//! same base twice. Each write of the local kind therefore also holds an exclusive `flock` on
//! `metadata/locks/<name>.lock` (names are unique across groups), taken after the mutex, and
//! under it first catches up with what another process wrote: a table whose file, parts or
//! version changed on disk is reloaded, so the write's version follows the other's and its
//! part goes after the other's parts. The lock dies with its process, so a crash never leaves
//! a table locked. The s3 kind needs none of this: its commit entries are write-once.

use std::fs::{self, File, OpenOptions};
use std::sync::Arc;

use super::{Storage, write_lock};
use crate::model::TableName;

/// The folder of the per-table lock files, in `metadata/`.
const LOCKS_DIR: &str = "locks";

/// A write's hold on a table across processes; released when dropped (or at exit).
#[derive(Debug)]
pub(super) struct ProcessLock {
    _file: Option<File>,
}

impl Storage {
    /// Takes `name`'s lock across processes (the caller holds its in-process lock) and
    /// brings the catalog's handle up to date with the table on disk. Best effort: a lock
    /// file that cannot be used is logged and the write goes on as before.
    pub(super) fn lock_across_processes(&self, name: &TableName) -> ProcessLock {
        if self.remote.is_some() {
            return ProcessLock { _file: None };
        }
        let dir = self.layout.root().join("metadata").join(LOCKS_DIR);
        let file = fs::create_dir_all(&dir)
            .and_then(|()| {
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(format!("{name}.lock")))
            })
            .and_then(|file| file.lock().map(|()| file));
        let file = match file {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::warn!(table = %name, error = %e, "cannot lock the table against other processes; writing without");
                None
            }
        };
        self.catch_up(name);
        ProcessLock { _file: file }
    }

    /// Reloads `name` when another process changed it since this one loaded it: its file
    /// (size, mtime), or its version (an append adds a part and bumps the sidecar without
    /// touching the base file). A table deleted by another process leaves the catalog.
    fn catch_up(&self, name: &TableName) {
        let Some(current) = self.peek(name) else {
            return;
        };
        let path = self.layout.table_path(&current.group, name);
        let same_file = self.catalog_matches_file(&current.group, name, &path);
        if same_file == Some(true) && self.latest_version(name) <= current.version {
            return;
        }
        if same_file.is_none() {
            write_lock(&self.tables).remove(name);
            return;
        }
        match self.load(&current.group, name, &path, Some(current.version)) {
            Ok(handle) => {
                write_lock(&self.tables).insert(name.clone(), Arc::new(handle));
                self.mark_readable(name);
            }
            Err(e) => {
                tracing::warn!(table = %name, error = %e, "cannot reload the table another process wrote")
            }
        }
    }
}
