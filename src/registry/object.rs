//! The registry on an object store (the s3 kind): a log of write-once entries instead of one
//! file replaced under a lock.
//!
//! An object store has no cross-process lock, and the one conditional write every kind
//! honours atomically is "create this key if it is absent" (`PutMode::Create`; see
//! `storage::object`). So each version of the registry is its own object, never rewritten:
//!
//! - `registry/log/<seq, 20 digits>.json` holds the FULL registry document of version `seq`
//!   (the same lists as the local kind's `registry.json`, so any tool can read an entry) and,
//!   in its `history` member, the record of the write that made it (see [`super::history`]):
//!   the entry number is the registry version. The zero padding makes key order the numeric
//!   order. Entries written before history was recorded have no `history` member and read as
//!   `unrecorded` versions.
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
//! Old entries are the registry's history and are kept as its retention says (see
//! [`super::history::Retention`]): every [`SWEEP_EVERY`]th write deletes the entries that are
//! at least `keep_min` behind the one it wrote and stopped being current (their successor was
//! written) more than `keep`, and never less than [`SWEEP_GRACE`], ago. The highest entry is
//! never deleted, so a reader's base and a writer's next key stay sound; the grace only
//! matters to a writer that stalled for an hour between steps 1 and 3, whose entry would then
//! not be the highest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use super::history::{self, HistoryOptions, HistoryPage, VersionDocument, Writer};
use super::{Committed, RegistryError, version_tag};
use crate::model::{RegistryDocument, RegistryOperation, RegistryVersion};
use crate::storage::object::{BlockingTree, ObjectError};

/// Where the entries live, relative to the configured prefix.
pub const LOG_PREFIX: &str = "registry/log";
/// A write gives up only after losing at least this many races for the next entry ...
pub const MIN_ATTEMPTS: u32 = 20;
/// ... and for at least this long.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// The least time since an entry stopped being current before the sweep deletes it, whatever
/// the retention says.
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

/// What a write records in the entry it commits.
pub(super) struct Recording<'a> {
    /// The kind of write.
    pub operation: RegistryOperation,
    /// Who made it.
    pub writer: &'a Writer,
}

/// The registry's log of entries in the object store.
#[derive(Debug, Clone)]
pub(super) struct EntryLog {
    tree: BlockingTree,
    /// [`PATIENCE`]; tests shorten it.
    pub(super) patience: Duration,
    /// The clock and retention of the history.
    pub(super) history: HistoryOptions,
}

impl EntryLog {
    pub(super) fn new(tree: BlockingTree, history: HistoryOptions) -> Self {
        Self {
            tree,
            patience: PATIENCE,
            history,
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
                    let (doc, _) = history::decode(&bytes).map_err(|e| RegistryError::File {
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

    /// Creates entry `record.version` holding `doc`; `false` when another writer created it
    /// first.
    fn create(
        &self,
        doc: &RegistryDocument,
        record: &RegistryVersion,
    ) -> Result<bool, RegistryError> {
        let seq = record.version;
        let bytes = history::encode(doc, record).map_err(|e| RegistryError::File {
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
        if !latest.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        let mut listed = match self.listed() {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the registry's entries to sweep old ones");
                return;
            }
        };
        listed.sort_unstable_by_key(|(seq, _)| *seq);
        let now = (self.history.clock)();
        let mut retention = self.history.retention;
        retention.keep = retention.keep.max(SWEEP_GRACE);
        // Oldest first: an entry goes only when its successor was written long enough ago,
        // and that instant grows with the number, so the first entry kept ends the sweep.
        for pair in listed.windows(2).take(SWEEP_BATCH) {
            let ((seq, _), (successor, written)) = (pair[0], pair[1]);
            if latest - seq < retention.keep_min.max(1) {
                return;
            }
            let superseded = match self.read_written(successor, Some(written)) {
                Ok(Some(next)) => history::micros_of(&next.record.at).unwrap_or(written),
                Ok(None) => written,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a registry entry to sweep old ones");
                    return;
                }
            };
            if !retention.expired(latest - seq, superseded, now) {
                return;
            }
            if let Err(e) = self.tree.delete(&Self::key(seq)) {
                tracing::warn!(key = %Self::key(seq), error = %e, "cannot delete an old registry entry");
                return;
            }
        }
    }

    /// Every entry retained, with the instant its object was written (µs), unordered.
    fn listed(&self) -> Result<Vec<(u64, i64)>, RegistryError> {
        let listed = self
            .tree
            .list(&ObjectPath::from(LOG_PREFIX))
            .map_err(unavailable)?;
        Ok(listed
            .iter()
            .filter_map(|meta| {
                Self::seq_of(&meta.location).map(|seq| (seq, meta.last_modified.timestamp_micros()))
            })
            .collect())
    }

    /// Entry `seq` with its record; `None` when it is not retained. An entry from before
    /// history was recorded reads as an `unrecorded` version written when its object was.
    fn read(&self, seq: u64) -> Result<Option<VersionDocument>, RegistryError> {
        self.read_written(seq, None)
    }

    fn read_written(
        &self,
        seq: u64,
        written: Option<i64>,
    ) -> Result<Option<VersionDocument>, RegistryError> {
        let key = Self::key(seq);
        let bytes = match self.tree.get(&key) {
            Ok(bytes) => bytes,
            Err(ObjectError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let (document, record) = history::decode(&bytes).map_err(|e| RegistryError::File {
            path: key.as_ref().into(),
            message: e.to_string(),
        })?;
        let record = match record {
            Some(record) => record,
            None => RegistryVersion {
                version: seq,
                at: history::rfc3339(match written {
                    Some(at) => at,
                    None => self.written_at(seq)?,
                }),
                operation: RegistryOperation::Unrecorded,
                changes: Vec::new(),
                written_by: None,
            },
        };
        Ok(Some(VersionDocument { record, document }))
    }

    /// When the object of entry `seq` was written (µs); 0 when it cannot be listed.
    fn written_at(&self, seq: u64) -> Result<i64, RegistryError> {
        Ok(self
            .listed()?
            .into_iter()
            .find(|(s, _)| *s == seq)
            .map_or(0, |(_, at)| at))
    }

    /// A page of the history, newest first.
    pub(super) fn page(&self, offset: u64, limit: u64) -> Result<HistoryPage, RegistryError> {
        let mut listed = self.listed()?;
        listed.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        let mut versions = Vec::new();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let count = usize::try_from(limit).unwrap_or(usize::MAX);
        for &(seq, written) in listed.iter().skip(start).take(count) {
            // An entry swept between the LIST and the GET is simply no longer retained.
            if let Some(version) = self.read_written(seq, Some(written))? {
                versions.push(version.record);
            }
        }
        Ok(HistoryPage {
            versions,
            total: listed.len() as u64,
            current: listed.first().map_or(0, |(seq, _)| *seq),
            oldest: listed.last().map(|(seq, _)| *seq),
        })
    }

    /// Version `version` with its document: a 404 or 410 error naming the versions retained
    /// when it is not.
    pub(super) fn version(&self, version: u64) -> Result<VersionDocument, RegistryError> {
        if version > 0
            && let Some(found) = self.read(version)?
        {
            return Ok(found);
        }
        let retained: Vec<u64> = self.listed()?.into_iter().map(|(seq, _)| seq).collect();
        Err(history::missing(version, &retained))
    }

    /// The write protocol of the module doc: `change` runs on the highest entry (again after
    /// each lost race, so it must depend on nothing but its argument and the tables) and
    /// returns the document to commit (`None`: nothing to write) and its answer. `base` is the
    /// entry this process holds; `install` receives every newer entry seen or written.
    pub(super) fn update<R>(
        &self,
        base: Entry,
        recording: &Recording<'_>,
        change: &mut Change<'_, R>,
        install: &dyn Fn(Entry),
    ) -> Result<(R, Committed), RegistryError> {
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
                _ => {
                    let committed = Committed {
                        tag: version_tag(&current.doc),
                        version: current.seq,
                    };
                    return Ok((answer, committed));
                }
            };
            let seq = current.seq + 1;
            let record = history::record(
                seq,
                (self.history.clock)(),
                recording.operation,
                recording.writer,
                &current.doc,
                &next,
            );
            if self.create(&next, &record)? {
                let tag = version_tag(&next);
                install(Entry {
                    seq,
                    doc: Arc::new(next),
                });
                self.sweep(seq);
                return Ok((answer, Committed { tag, version: seq }));
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
                let committed = Committed {
                    tag: version_tag(&next),
                    version: winner.seq,
                };
                return Ok((answer, committed));
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
