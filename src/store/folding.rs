//! The background folder: folds each table's pushed parts into its file a short, configured
//! time after its last push, so tools that read only `<name>.parquet` see every acknowledged
//! row within that delay.
//!
//! Pushes tell the [`FoldQueue`] which table they appended to; one thread, owned by a
//! [`FoldGuard`] that stops it on drop, waits until a table has been quiet for
//! `storage.fold_delay_ms` (debounced per table, so a burst of pushes costs one fold) or has
//! gathered `storage.compact_after_parts` parts under steady pushes, then folds it. Cost is
//! bounded per table: after a fold that took `d`, the next fold of that table waits at least
//! `d × (1 / fold_max_share − 1)`, so a large table under steady pushes is rewritten at most a
//! bounded share of the time. Folds never block reads (readers keep their snapshot), and hold
//! a table's write lock only for the final rename (see `storage::fold`).
//!
//! Without a running folder (the CLI, or a store opened by a test without a server), a push
//! that brings a table to `compact_after_parts` parts folds it on the spot, as before.
//! `POST /features/{group}/{name}/compact` ([`FeatureStore::compact`]) folds on request.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::online::{self, IndexCache};
use super::{FeatureStore, Result, StoreError};
use crate::cache::TieredCache;
use crate::model::{GroupName, TableName};
use crate::storage::{FoldOutcome, Storage, StorageConfig, StorageError};

/// Longest a failed fold waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Tables with parts waiting to be folded, and when.
#[derive(Debug)]
pub(super) struct FoldQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
    delay: Duration,
    max_parts: usize,
    share: f64,
}

#[derive(Debug, Default)]
struct QueueState {
    /// Whether a folder thread serves the queue.
    running: bool,
    /// Set by the guard's drop: the thread returns at its next wake-up.
    stop: bool,
    pending: HashMap<TableName, Pending>,
    /// Per table, the earliest start of its next fold (the rate limit).
    not_before: HashMap<TableName, Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    last_push: Instant,
    parts: usize,
}

impl FoldQueue {
    /// A queue with the `[storage]` fold settings.
    pub(super) fn new(config: &StorageConfig) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            delay: Duration::from_millis(config.fold_delay_ms),
            max_parts: config.compact_after_parts,
            share: config.fold_max_share,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every update is a single insert, remove or flag: a poisoned state is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parts a table may gather before it is folded without waiting for quiet.
    pub(super) fn max_parts(&self) -> usize {
        self.max_parts
    }

    /// Records that `table` has `parts` parts waiting after a push; false when no folder runs
    /// (the caller then folds on its own when the parts are too many).
    pub(super) fn pushed(&self, table: &TableName, parts: usize) -> bool {
        let mut state = self.lock();
        if !state.running {
            return false;
        }
        state.pending.insert(
            table.clone(),
            Pending {
                last_push: Instant::now(),
                parts,
            },
        );
        drop(state);
        self.wake.notify_all();
        true
    }

    /// When `table`'s fold is due.
    fn due(&self, state: &QueueState, table: &TableName, pending: Pending) -> Instant {
        let wanted = if pending.parts >= self.max_parts {
            pending.last_push
        } else {
            pending.last_push + self.delay
        };
        state
            .not_before
            .get(table)
            .map_or(wanted, |&limit| wanted.max(limit))
    }

    /// The next table to fold: waits until one is due or the queue is stopped (`None`).
    fn next(&self) -> Option<TableName> {
        let mut state = self.lock();
        loop {
            if state.stop {
                return None;
            }
            let now = Instant::now();
            let soonest = state
                .pending
                .iter()
                .map(|(table, &p)| (self.due(&state, table, p), table.clone()))
                .min_by_key(|(due, _)| *due);
            match soonest {
                Some((due, table)) if due <= now => {
                    state.pending.remove(&table);
                    return Some(table);
                }
                Some((due, _)) => {
                    state = self
                        .wake
                        .wait_timeout(state, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                None => {
                    state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// Rate-limits `table` after a fold that took `took`.
    fn folded(&self, table: &TableName, took: Duration) {
        let pause = took.mul_f64(1.0 / self.share - 1.0);
        self.lock()
            .not_before
            .insert(table.clone(), Instant::now() + pause);
    }

    /// Puts `table` back after a failed fold, to be tried again later.
    fn retry(&self, table: &TableName) {
        let mut state = self.lock();
        state
            .not_before
            .insert(table.clone(), Instant::now() + RETRY_AFTER);
        state.pending.entry(table.clone()).or_insert(Pending {
            last_push: Instant::now(),
            parts: 0,
        });
    }
}

/// Owns the folder thread; dropping it stops the thread (after the fold in progress, if any)
/// and joins it. Parts still waiting stay valid: the next start folds them.
pub struct FoldGuard {
    queue: Arc<FoldQueue>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FoldGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoldGuard").finish_non_exhaustive()
    }
}

impl Drop for FoldGuard {
    fn drop(&mut self) {
        {
            let mut state = self.queue.lock();
            state.stop = true;
            state.running = false;
        }
        self.queue.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the folder does with a due table: fold it, reporting how it went.
pub(super) enum FoldResult {
    /// Folded (or nothing to fold).
    Done,
    /// The table is gone: nothing to retry.
    Gone,
    /// Failed; try again later.
    Failed,
}

/// Starts the folder thread on `queue`, with `waiting` (tables that already have parts) due
/// one delay later; `fold` folds one table.
pub(super) fn start(
    queue: Arc<FoldQueue>,
    waiting: Vec<(TableName, usize)>,
    fold: impl Fn(&TableName) -> FoldResult + Send + 'static,
) -> std::io::Result<FoldGuard> {
    {
        let mut state = queue.lock();
        state.running = true;
        state.stop = false;
        // Parts left by the previous run are folded one delay after the start, as if they had
        // just been pushed.
        let now = Instant::now();
        for (table, parts) in waiting {
            state.pending.insert(
                table,
                Pending {
                    last_push: now,
                    parts,
                },
            );
        }
    }
    let worker = Arc::clone(&queue);
    let thread = std::thread::Builder::new()
        .name("featurestore-fold".into())
        .spawn(move || {
            while let Some(table) = worker.next() {
                let started = Instant::now();
                match fold(&table) {
                    FoldResult::Done => worker.folded(&table, started.elapsed()),
                    FoldResult::Gone => {}
                    FoldResult::Failed => worker.retry(&table),
                }
            }
        });
    let thread = match thread {
        Ok(thread) => thread,
        Err(e) => {
            // Without the thread, pushes must go back to folding on their own.
            queue.lock().running = false;
            return Err(e);
        }
    };
    Ok(FoldGuard {
        queue,
        thread: Some(thread),
    })
}

impl FeatureStore {
    /// Starts folding pushed parts into table files in the background (see `folding`),
    /// beginning with the tables that already have parts; dropping the guard stops it.
    pub fn start_folding(&self) -> std::io::Result<FoldGuard> {
        let waiting = self
            .storage
            .list()
            .into_iter()
            .filter(|t| t.file.part_count() > 0)
            .map(|t| (t.name.clone(), t.file.part_count()))
            .collect();
        let store = self.clone();
        start(
            Arc::clone(&self.folds),
            waiting,
            move |name| match fold_table(&store.storage, &store.cache, &store.indexes, None, name) {
                Ok(outcome) => {
                    if outcome.parts_folded > 0 {
                        store.announce_table(None, name.as_str());
                    }
                    FoldResult::Done
                }
                Err(StoreError::Storage(StorageError::TableNotFound { .. })) => FoldResult::Gone,
                Err(e) => {
                    tracing::warn!(table = %name, error = %e, "could not fold pushed parts into the table file; will retry");
                    FoldResult::Failed
                }
            },
        )
    }

    /// Folds the pushed parts of `group/name` into its table file now (nothing to do is not an
    /// error: the answer says 0 parts).
    pub async fn compact(&self, group: GroupName, name: TableName) -> Result<FoldOutcome> {
        let indexes = Arc::clone(&self.indexes);
        let written = (group.to_string(), name.to_string());
        let outcome = self
            .blocking(move |s, c| fold_table(s, c, &indexes, Some(&group), &name))
            .await?;
        if outcome.parts_folded > 0 {
            self.announce_table(Some(&written.0), &written.1);
        }
        Ok(outcome)
    }
}

/// Folds a table's parts into its file, then carries its online index over (same rows) and
/// drops its cached pages (their keys name the old snapshot: dead entries, freed at once).
pub(super) fn fold_table(
    storage: &Storage,
    cache: &TieredCache,
    indexes: &online::IndexCache,
    group: Option<&GroupName>,
    name: &TableName,
) -> Result<FoldOutcome> {
    let outcome = storage.fold(group, name)?;
    if outcome.parts_folded > 0 {
        online::retag(indexes, name.as_str(), outcome.before, outcome.after);
        cache.invalidate_table(name.as_str());
    }
    Ok(outcome)
}

/// After an offline push that left `parts` parts on `view`'s table: tells the folder, or, with
/// no folder running, folds here once the parts reach `storage.compact_after_parts` (a bound on
/// the parts a table gathers). The rows are durable already, so a failed fold is logged, not
/// the push's failure.
pub(super) fn after_push(
    folds: &FoldQueue,
    storage: &Storage,
    cache: &TieredCache,
    indexes: &IndexCache,
    view: &str,
    parts: usize,
) {
    let Ok(name) = view.parse::<TableName>() else {
        return;
    };
    if parts > 0
        && !folds.pushed(&name, parts)
        && parts >= folds.max_parts()
        && let Err(e) = fold_table(storage, cache, indexes, None, &name)
    {
        tracing::warn!(table = %name, error = %e, "could not fold pushed parts");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(delay_ms: u64, max_parts: usize) -> FoldQueue {
        FoldQueue {
            state: Mutex::new(QueueState {
                running: true,
                ..QueueState::default()
            }),
            wake: Condvar::new(),
            delay: Duration::from_millis(delay_ms),
            max_parts,
            share: 0.25,
        }
    }

    fn name(s: &str) -> TableName {
        s.parse().expect("valid name")
    }

    #[test]
    fn a_fold_is_due_after_the_quiet_time_or_at_once_when_parts_pile_up() {
        let q = queue(1000, 4);
        let now = Instant::now();
        let state = q.lock();
        let quiet = q.due(
            &state,
            &name("t"),
            Pending {
                last_push: now,
                parts: 1,
            },
        );
        assert_eq!(quiet, now + Duration::from_millis(1000));
        let many = q.due(
            &state,
            &name("t"),
            Pending {
                last_push: now,
                parts: 4,
            },
        );
        assert_eq!(many, now);
    }

    #[test]
    fn a_slow_fold_holds_the_next_one_of_that_table_back() {
        let q = queue(0, 4);
        q.folded(&name("big"), Duration::from_millis(100));
        let state = q.lock();
        let now = Instant::now();
        let due = q.due(
            &state,
            &name("big"),
            Pending {
                last_push: now,
                parts: 1,
            },
        );
        // share 0.25: a fold of 100 ms is followed by at least 300 ms without one.
        assert!(
            due >= now + Duration::from_millis(250),
            "{due:?} vs {now:?}"
        );
        let other = q.due(
            &state,
            &name("small"),
            Pending {
                last_push: now,
                parts: 1,
            },
        );
        assert_eq!(other, now);
    }

    #[test]
    fn without_a_folder_a_push_is_told_to_fold_itself() {
        let q = queue(0, 4);
        q.lock().running = false;
        assert!(!q.pushed(&name("t"), 1));
    }
}
