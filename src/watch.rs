//! Noticing tables that other tools add, replace or remove under `features/`, and registry
//! definitions that other processes write under `registry/` (the server runs one watcher on
//! each folder).
//!
//! A `notify` watcher feeds a thread that waits until the tree has been quiet for the debounce
//! interval, then calls back once: a Spark or pandas job copying a file produces dozens of
//! events, and one rescan after the last of them is enough. The rescan itself only loads
//! complete Parquet files, so a callback that fires mid-copy keeps serving the previous
//! version and the next event picks the finished file up.
//!
//! The [`WatchGuard`] owns the watcher and the thread; dropping it stops both.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// Longest a change waits for the tree to be quiet before it is rescanned anyway.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Keeps the watcher alive; dropping it stops watching and joins the thread.
pub struct WatchGuard {
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchGuard").finish_non_exhaustive()
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        // Dropping the watcher drops the channel's sender, which ends the thread's loop.
        drop(self.watcher.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether an event path can matter: temporary files of in-progress writes cannot.
fn relevant(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| !crate::storage::Layout::is_temp_file(n))
}

/// Watches `dir` recursively and calls `on_change` once the tree has been quiet for
/// `debounce` after any relevant event.
pub fn watch(
    dir: &Path,
    debounce: Duration,
    on_change: impl Fn() + Send + 'static,
) -> notify::Result<WatchGuard> {
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(tx)?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let dir: PathBuf = dir.to_owned();
    let thread = std::thread::Builder::new()
        .name("featurestore-watch".into())
        .spawn(move || {
            loop {
                match rx.recv() {
                    Ok(Ok(event)) if event.paths.iter().any(|p| relevant(p)) => {}
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "file watcher error");
                        continue;
                    }
                    Err(_) => return,
                }
                // Wait for quiet, so one copy of many chunks causes one rescan; but never
                // longer than `MAX_WAIT`, so steady writes elsewhere cannot hold a change back.
                let deadline = Instant::now() + MAX_WAIT;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(debounce.min(left)) {
                        Ok(_) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                on_change();
            }
        })?;
    Ok(WatchGuard {
        watcher: Some(watcher),
        thread: Some(thread),
    })
}
