//! The registry document on disk: reading it, noticing cheaply that another process replaced
//! it, and the cross-process lock every writer holds around its read-modify-write.
//!
//! Several processes share one registry file (the server and `featurestore apply`, or several
//! replicas): none may write the copy it loaded at start-up, or it erases what the others
//! wrote since. So a writer takes an exclusive `flock` on `registry.lock`, re-reads the file,
//! merges its change into what it read and replaces the file atomically before it lets go.
//! Readers need no lock: the file is only ever replaced by a rename, so a reader sees the old
//! document or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::RegistryError;
use crate::model::RegistryDocument;

/// Name of the lock file beside the registry document.
pub const LOCK_FILE: &str = "registry.lock";

/// Identifies one version of the file from a `stat` alone. Writers replace the file by
/// rename, so each version has a new inode; the modification time and length also catch a
/// file edited in place by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

/// The stamp of the file at `path`; `None` when it does not exist.
pub(super) fn stamp(path: &Path) -> Result<Option<Stamp>, RegistryError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(Stamp {
            inode: inode(&meta),
            modified: meta.modified().ok(),
            len: meta.len(),
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(path, e.to_string())),
    }
}

#[cfg(unix)]
fn inode(meta: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &fs::Metadata) -> u64 {
    0
}

/// The document at `path` and the stamp of the version read (an empty document and `None`
/// when there is no file yet). The stamp is taken before the read, so a replacement racing
/// with it makes the stamp older than the content, never newer: the next check reads again
/// rather than missing a version.
pub(super) fn read(path: &Path) -> Result<(RegistryDocument, Option<Stamp>), RegistryError> {
    let before = stamp(path)?;
    match fs::read(path) {
        Ok(bytes) => {
            let doc = serde_json::from_slice(&bytes).map_err(|e| {
                file_error(
                    path,
                    format!("{e}; fix or remove the file (every write re-reads it)"),
                )
            })?;
            Ok((doc, before))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok((RegistryDocument::default(), None)),
        Err(e) => Err(file_error(path, e.to_string())),
    }
}

/// An exclusive lock on the registry, across processes; released on drop (closing the file
/// releases the `flock`, also when the process dies).
#[derive(Debug)]
pub(super) struct WriteLock {
    _file: File,
}

/// Takes the registry's write lock in `dir`, waiting for the process that holds it.
pub(super) fn lock(dir: &Path) -> Result<WriteLock, RegistryError> {
    let path = dir.join(LOCK_FILE);
    let file = open_lock_file(&path)?;
    file.lock()
        .map_err(|e| file_error(&path, format!("cannot lock: {e}")))?;
    Ok(WriteLock { _file: file })
}

/// Takes the write lock only if nobody holds it (for housekeeping that can wait).
pub(super) fn try_lock(dir: &Path) -> Option<WriteLock> {
    let file = open_lock_file(&dir.join(LOCK_FILE)).ok()?;
    file.try_lock().ok()?;
    Some(WriteLock { _file: file })
}

fn open_lock_file(path: &Path) -> Result<File, RegistryError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| file_error(dir, e.to_string()))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| file_error(path, e.to_string()))
}

/// Removes temporary files that interrupted writes left in `dir`. Only called under the write
/// lock: every writer creates its temporary file under that lock, so any found then belongs
/// to a writer that died.
pub(super) fn sweep_temp_files(dir: &Path, _lock: &WriteLock) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(crate::storage::Layout::is_temp_file)
        {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a temporary file left by an interrupted registry write")
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a temporary registry file")
                }
            }
        }
    }
}

pub(super) fn file_error(path: &Path, message: String) -> RegistryError {
    RegistryError::File {
        path: PathBuf::from(path),
        message,
    }
}
