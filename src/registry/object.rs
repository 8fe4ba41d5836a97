//! The registry on an object store (the s3 kind): a log of write-once entries instead of one
//! file replaced under a lock.
//!
//! An object store has no cross-process lock, and the one conditional write every kind
//! honours atomically is "create this key if it is absent" (`PutMode::Create`; see
//! `storage::object`). So each version of the registry is its own object, never rewritten:
//!
//! - `registry/log/<seq, 20 digits>.json` holds the FULL registry document of version `seq`
//!   (the same JSON as the local kind's `registry.json`, so any tool can read an entry), and
//!   the zero padding makes key order the numeric order.
//!
//! What a reader trusts: the highest entry, and nothing else. A replica lists the folder once
//! at open and reads the highest entry; afterwards it asks only for keys after the one it
//! holds (`list_after`: one cheap LIST when nothing changed, which is what the server's poll
//! costs) and reads the highest of those. Every entry is a whole document written by one
//! atomic put, so a reader never sees a partial one.
//!
//! A write, in order, under this process's writer mutex:
//! 1. Make sure the base is the highest entry (`list_after` the one held).
//! 2. Run the change on it (the same pure merge as the local kind; an `If-Match` is checked
//!    against this base, so the ETag, a digest of the document, means the same on both kinds).
//! 3. Create entry `seq + 1` with `put_if_absent`. This is the commit point: the write is
//!    acknowledged only once it succeeded. If the key is taken, another replica committed
//!    first: read the winner, run the change again on it (an upsert of other objects merges
//!    in; a stale `If-Match` now fails with `Changed`) and try `seq + 2` after a short random
//!    pause. It gives up with `Contended` (nothing written) only once it has lost
//!    [`MIN_ATTEMPTS`] races and kept losing for [`PATIENCE`]: a replica writing a burst wins
//!    every race while its next write needs one GET less than the loser's retry, so a bound
//!    on attempts alone would refuse the other replica's write for the length of the burst.
//!
//! A failed store call (down, 5xx, refused) is `RegistryError::Unavailable` (503) and never
//! leaves part of a change: an entry is there whole or not at all. The one ambiguous case is a
//! put that timed out after the store had written it: the change then took effect whole
//! although the writer answered 503. Whoever retries finds the registry already as asked:
//! `object_store`'s own retry of the put gets "already exists", sees the winner holds exactly
//! its document and answers success; a client's retried apply merges to an unchanged document.
//!
//! What a crash leaves: nothing at all before step 3, and a whole entry after it (the put is
//! atomic), so the registry is always one complete version. There are no temporary objects.
//!
//! Old entries are the registry's history and are kept, except that every
//! [`SWEEP_EVERY`]th write deletes entries that are both more than [`KEEP_ENTRIES`] behind
//! the one it wrote and older than [`SWEEP_GRACE`]. The highest entry is never deleted, so a
//! reader's base and a writer's next key stay sound; the grace only matters to a writer that
//! stalled for an hour between steps 1 and 3, whose entry would then not be the highest.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use super::{RegistryError, version_tag};
use crate::model::RegistryDocument;
use crate::storage::object::{BlockingTree, ObjectError};

/// Where the entries live, relative to the configured prefix.
pub const LOG_PREFIX: &str = "registry/log";
/// A write gives up only after losing at least this many races for the next entry ...
pub const MIN_ATTEMPTS: u32 = 20;
/// ... and for at least this long.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How many of the latest entries the sweep always keeps.
pub const KEEP_ENTRIES: u64 = 64;
/// How old an entry must also be before the sweep deletes it.
pub const SWEEP_GRACE: Duration = Duration::from_secs(3600);
/// The sweep runs after every this many entries (it costs one LIST of the whole log).
pub const SWEEP_EVERY: u64 = 16;
/// Upper bound on deletes per sweep, so one write never pays for a long backlog at once.
const SWEEP_BATCH: usize = 256;

/// A registry change: the document to commit (`None`: nothing) and the answer, from the
/// current document.
pub(super) type Change<'a, R> =
    dyn FnMut(&RegistryDocument) -> Result<(Option<RegistryDocument>, R), RegistryError> + 'a;

/// One entry as read: its number and its document.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub seq: u64,
    pub doc: Arc<RegistryDocument>,
}

/// The registry's log of entries in the object store.
#[derive(Debug, Clone)]
pub(super) struct EntryLog {
    tree: BlockingTree,
    /// [`PATIENCE`]; tests shorten it.
    pub(super) patience: Duration,
}

impl EntryLog {
    pub(super) fn new(tree: BlockingTree) -> Self {
        Self {
            tree,
            patience: PATIENCE,
        }
    }

    /// The key of entry `seq`.
    pub(super) fn key(seq: u64) -> ObjectPath {
        ObjectPath::from(format!("{LOG_PREFIX}/{seq:020}.json"))
    }

    /// The entry number a key names; `None` for anything else found in the folder.
    fn seq_of(key: &ObjectPath) -> Option<u64> {
        let digits = key.filename()?.strip_suffix(".json")?;
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    }

    /// The highest entry after `known` (after none: the highest of all), or `None` when
    /// there is none.
    pub(super) fn newer_than(&self, known: Option<u64>) -> Result<Option<Entry>, RegistryError> {
        let prefix = ObjectPath::from(LOG_PREFIX);
        // The highest entry is never swept, but a tool may delete keys under the folder: list
        // again rather than fail on an entry that vanished between the LIST and the GET.
        for _ in 0..3 {
            let listed = match known {
                Some(seq) => self.tree.list_after(&prefix, &Self::key(seq)),
                None => self.tree.list(&prefix),
            }
            .map_err(unavailable)?;
            let Some(seq) = listed
                .iter()
                .filter_map(|meta| Self::seq_of(&meta.location))
                .filter(|seq| known.is_none_or(|k| *seq > k))
                .max()
            else {
                return Ok(None);
            };
            let key = Self::key(seq);
            match self.tree.get(&key) {
                Ok(bytes) => {
                    let doc = serde_json::from_slice(&bytes).map_err(|e| RegistryError::File {
                        path: key.as_ref().into(),
                        message: format!(
                            "{e}; the latest registry entry is not a registry document: delete \
                             it to serve the previous one"
                        ),
                    })?;
                    return Ok(Some(Entry {
                        seq,
                        doc: Arc::new(doc),
                    }));
                }
                Err(ObjectError::NotFound { .. }) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(RegistryError::Unavailable {
            reason: format!("the entries under {LOG_PREFIX}/ keep disappearing while read"),
        })
    }

    /// Creates entry `seq` holding `doc`; `false` when another writer created it first.
    fn create(&self, seq: u64, doc: &RegistryDocument) -> Result<bool, RegistryError> {
        let bytes = serde_json::to_vec_pretty(doc).map_err(|e| RegistryError::File {
            path: Self::key(seq).as_ref().into(),
            message: e.to_string(),
        })?;
        match self.tree.put_if_absent(&Self::key(seq), Bytes::from(bytes)) {
            Ok(()) => Ok(true),
            Err(ObjectError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes old entries (see the module doc) after entry `latest` was written. Best
    /// effort: a failure is logged and the entries wait for the next sweep.
    fn sweep(&self, latest: u64) {
        if !latest.is_multiple_of(SWEEP_EVERY) || latest <= KEEP_ENTRIES {
            return;
        }
        let listed = match self.tree.list(&ObjectPath::from(LOG_PREFIX)) {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the registry's entries to sweep old ones");
                return;
            }
        };
        let cutoff = SystemTime::now()
            .checked_sub(SWEEP_GRACE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old = listed
            .iter()
            .filter(|meta| {
                Self::seq_of(&meta.location).is_some_and(|seq| seq + KEEP_ENTRIES <= latest)
                    && SystemTime::from(meta.last_modified) < cutoff
            })
            .take(SWEEP_BATCH);
        for meta in old {
            if let Err(e) = self.tree.delete(&meta.location) {
                tracing::warn!(key = %meta.location, error = %e, "cannot delete an old registry entry");
                return;
            }
        }
    }

    /// The write protocol of the module doc: `change` runs on the highest entry (again after
    /// each lost race, so it must depend on nothing but its argument and the tables) and
    /// returns the document to commit (`None`: nothing to write) and its answer. `base` is the
    /// entry this process holds; `install` receives every newer entry seen or written.
    pub(super) fn update<R>(
        &self,
        base: Entry,
        change: &mut Change<'_, R>,
        install: &dyn Fn(Entry),
    ) -> Result<(R, String), RegistryError> {
        let known = (base.seq > 0).then_some(base.seq);
        let mut current = match self.newer_than(known)? {
            Some(newer) => {
                install(newer.clone());
                newer
            }
            None => base,
        };
        let started = Instant::now();
        let mut lost = 0;
        loop {
            let (next, answer) = change(&current.doc)?;
            let next = match next {
                Some(next) if next != *current.doc => next,
                _ => return Ok((answer, version_tag(&current.doc))),
            };
            let seq = current.seq + 1;
            if self.create(seq, &next)? {
                let tag = version_tag(&next);
                install(Entry {
                    seq,
                    doc: Arc::new(next),
                });
                self.sweep(seq);
                return Ok((answer, tag));
            }
            let Some(winner) = self.newer_than(Some(current.seq))? else {
                return Err(RegistryError::Unavailable {
                    reason: format!(
                        "entry {} was reported taken but cannot be listed",
                        Self::key(seq)
                    ),
                });
            };
            install(winner.clone());
            if *winner.doc == next {
                // Already exactly what this write asked for (its own earlier attempt, which
                // timed out after the store wrote it, or an identical change).
                return Ok((answer, version_tag(&next)));
            }
            current = winner;
            lost += 1;
            if lost >= MIN_ATTEMPTS && started.elapsed() >= self.patience {
                return Err(RegistryError::Contended { attempts: lost });
            }
            pause_after_losing(lost);
        }
    }
}

/// A random pause of up to about `2 * lost` ms (at most 21 ms), so a writer that keeps losing
/// stops moving in step with the winner's next write and lands in a gap between two of them.
fn pause_after_losing(lost: u32) {
    let mut noise = [0u8; 1];
    let _ = getrandom::fill(&mut noise);
    let ceiling = 1 + 2 * u64::from(lost.min(10));
    std::thread::sleep(Duration::from_millis(u64::from(noise[0]) % ceiling));
}

/// A store failure as the registry reports it (503): whatever went wrong, nothing was
/// written that a reader trusts.
fn unavailable(error: ObjectError) -> RegistryError {
    RegistryError::Unavailable {
        reason: error.to_string(),
    }
}
