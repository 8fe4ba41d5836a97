//! Which processes have the data root open, so that start-up housekeeping never removes what a
//! live process is writing.
//!
//! Opening the tree sweeps temporary files and orphaned parts left by a crash. That is only
//! safe when no other process is working on the tree: a `featurestore apply` started beside a
//! running server would otherwise delete the server's in-progress temporary file and fail its
//! write. Every process holds a shared `flock` on `metadata/open.lock` while the tree is open;
//! the sweep runs only when an exclusive lock can be had first, i.e. when the process is alone.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Name of the lock file, in `metadata/`.
pub const PRESENCE_FILE: &str = "open.lock";

/// This process's hold on the data root; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Presence {
    _file: Option<File>,
}

impl Presence {
    /// Joins the processes that have the tree in `metadata_dir` open; the flag says whether
    /// this one is alone (and so may sweep). Housekeeping is skipped when the lock file cannot
    /// be used (a read-only root cannot be swept anyway).
    pub fn join(metadata_dir: &Path) -> (Self, bool) {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(metadata_dir.join(PRESENCE_FILE));
        let Ok(file) = file else {
            return (Self { _file: None }, false);
        };
        let alone = file.try_lock().is_ok();
        // From exclusive (or nothing) to shared: others may open the tree from now on, and one
        // that is sweeping right now is waited for.
        if let Err(e) = file.lock_shared() {
            tracing::warn!(error = %e, "cannot lock the data root's presence file");
        }
        (Self { _file: Some(file) }, alone)
    }
}
